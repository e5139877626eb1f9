"""Real local services for tests, the demo and benchmarks (not part of the connector).

Apache Kafka comes from its jars on Maven Central; the schema registry is
Apicurio Registry's packaged app, also from Maven Central. Both are cached by
version under ``cache_dir()`` so a reused machine downloads nothing.
"""
