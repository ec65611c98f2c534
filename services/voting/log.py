"""A poll's append-only log as a Merkle tree (pymerkle 7): every ballot event is a leaf.

The leaves live in `ballot_event`; pymerkle computes roots and proofs over their hashes, so no
proof code is ours. Entries are canonical JSON, hashed as pymerkle hashes a leaf.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pymerkle import BaseMerkleTree, InclusionProof, InvalidProof, verify_inclusion

ALGORITHM = "sha256"


class LeafTree(BaseMerkleTree):
    """The tree over leaf hashes already computed (read back from the database)."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.leaves = list(leaves)
        super().__init__(ALGORITHM)

    def _encode_entry(self, data: bytes) -> bytes:
        return data

    def _store_leaf(self, data: bytes, digest: bytes) -> int:
        self.leaves.append(digest)
        return len(self.leaves)

    def _get_leaf(self, index: int) -> bytes:
        return self.leaves[index - 1]

    def _get_leaves(self, offset: int, width: int) -> list[bytes]:
        return self.leaves[offset : offset + width]

    def _get_size(self) -> int:
        return len(self.leaves)


_HASHER = LeafTree()


def encode(entry: dict[str, Any]) -> bytes:
    """Canonical: sorted keys, no spaces, UTF-8; the same bytes on every machine."""
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)


def leaf_hash(encoded: bytes) -> bytes:
    return _HASHER.hash_buff(encoded)


def root_of(leaves: Sequence[bytes]) -> bytes:
    return LeafTree(leaves).get_root()


def prove(leaves: Sequence[bytes], index: int) -> dict[str, Any]:
    """An inclusion proof of leaf `index` (from 1) in the tree of `leaves`, serialised for
    anyone to check with pymerkle's `verify_inclusion`."""
    proof: InclusionProof = LeafTree(leaves).prove_inclusion(index, len(leaves))
    return proof.serialize()


def verify(leaf: bytes, root: bytes, serialised: dict[str, Any]) -> bool:
    try:
        verify_inclusion(leaf, root, InclusionProof.deserialize(serialised))
    except InvalidProof:
        return False
    return True
