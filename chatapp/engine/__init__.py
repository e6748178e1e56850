"""Adapters from inference runtimes to the core's Engine protocol."""
