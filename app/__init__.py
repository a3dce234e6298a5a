"""ledgerflow: a durable, audited orchestrator for clinical back-office work."""

__version__ = "0.1.0"
