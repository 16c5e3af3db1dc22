"""Unfolded models (see base.py for the contract)."""
