"""cdp-connector: Kafka clickstream (Avro) to the Sitecore CDP Stream API."""

__all__ = ["__version__"]

__version__ = "0.1.0"
