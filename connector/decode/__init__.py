"""Decode: Avro bytes to records — decoders, generated readers, parsed schemas, and the
schema registry client."""
