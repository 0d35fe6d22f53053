"""Tests of the specimen z-stack domain."""
