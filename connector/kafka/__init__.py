"""Kafka edges shared by the stages: topics, commits, and what the client's errors mean."""
