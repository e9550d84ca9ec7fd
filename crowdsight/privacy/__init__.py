"""Privacy by default: head/face redaction of every exported image, and retention purges."""

from crowdsight.privacy.redaction import Redactor

__all__ = ["Redactor"]
