"""Input discovery, pairing and decoding, one module per modality."""

from genmetrics.io.common import Skipped

__all__ = ["Skipped"]
