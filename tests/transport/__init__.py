"""Tests of edgeloop.transport's bulk lane: protocol, providers, conformance, processes."""
