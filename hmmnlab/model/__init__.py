"""The HMMN network: encoders, key/value heads, memory reads and decoder."""

from hmmnlab.model.hmmn import HMMN, MemoryFeatures, QueryFeatures, ReadOut

__all__ = ["HMMN", "MemoryFeatures", "QueryFeatures", "ReadOut"]
