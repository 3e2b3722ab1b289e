"""Operator tools for the automated-trading-platform deploy (run from bin/)."""
