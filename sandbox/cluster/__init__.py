"""Builds the local cluster binaries from Go modules and configures kwok."""
