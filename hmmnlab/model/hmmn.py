"""HMMN: the Hierarchical Memory Matching Network (Seong et al., ICCV 2021).

The network is split into named stages, each called by the inference loop:

1. :meth:`HMMN.encode_memory` - a past frame and its soft masks -> keys/values at r4, r3, r2;
2. :meth:`HMMN.encode_query` - the frame to segment -> query keys/values and decoder features;
3. :meth:`HMMN.read` - the memory reads (kernel-guided at r4, top-k guided at r3 and r2);
4. :meth:`HMMN.decode` - read-outs + query features -> per-object logits.

The memory itself is a :class:`hmmnlab.memory.MemoryBank` owned by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hmmnlab import ops
from hmmnlab.config import ModelConfig, ReadConfig
from hmmnlab.features import MemoryFeatures, QueryFeatures, ReadOut
from hmmnlab.hooks import HookGroup
from hmmnlab.memory import MemoryBank
from hmmnlab.model.decoder import Decoder
from hmmnlab.model.encoders import MemoryEncoder, QueryEncoder
from hmmnlab.model.heads import KeyValue
from hmmnlab.model.reads import FineRead, Guidance, KernelGuidedRead

__all__ = ["HMMN", "MemoryFeatures", "QueryFeatures", "ReadOut", "owners", "per_object"]


class HMMN(nn.Module):
    """The HMMN network (see the module docstring for its stages)."""

    def __init__(self, config: ModelConfig | None = None, *, imagenet_init: bool = False) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        d4, d3, d2 = config.feature_dims
        self.memory_encoder = MemoryEncoder(config.backbone, imagenet_init)
        self.query_encoder = QueryEncoder(config.backbone, imagenet_init)
        self.kv_m_r4 = KeyValue(d4, config.key_dim_r4, config.value_dim_r4)
        self.kv_q_r4 = KeyValue(d4, config.key_dim_r4, config.value_dim_r4)
        self.kv_m_r3 = KeyValue(d3, config.key_dim_r3, config.value_dim_r3)
        self.kv_q_r3 = KeyValue(d3, config.key_dim_r3, None)
        self.kv_m_r2 = KeyValue(d2, config.key_dim_r2, config.value_dim_r2)
        self.kv_q_r2 = KeyValue(d2, config.key_dim_r2, None)
        self.memory_features = HookGroup(["k4", "v4", "k3", "v3", "k2", "v2"])
        self.query_features = HookGroup(["k4", "v4", "k3", "k2"])
        self.r4 = KernelGuidedRead()
        self.r3 = FineRead("r3", 2)
        self.r2 = FineRead("r2", 4)
        self.decoder = Decoder(
            2 * config.value_dim_r4,
            (d3, config.value_dim_r3),
            (d2, config.value_dim_r2),
            config.decoder_dim,
        )
        self.output = HookGroup(["object_probs", "logits", "probs"])

    # 1. memory --------------------------------------------------------------------------------------
    def encode_memory(
        self, frame: Tensor, masks: Tensor, owner: Tensor | None = None
    ) -> MemoryFeatures:
        """frame: 1 x 3 x H x W RGB in [0, 1]; masks: B x H x W soft mask of each object (the frame's
        probabilities of objects 1..B). H, W multiples of 16.

        Training batches several videos: then frame is N x 3 x H x W (one frame per video) and
        ``owner`` (B, int64) gives the video of each object row (see :func:`owners`)."""
        mask = masks.unsqueeze(1)  # B x 1 x H x W
        if owner is None:
            total = masks.sum(dim=0, keepdim=True)  # 1 x H x W
        else:  # the sum over the objects of each row's own video
            total = masks.new_zeros((frame.shape[0], *masks.shape[1:])).index_add_(0, owner, masks)
            total = total[owner]  # B x H x W
        others = (total - masks).clamp(0, 1).unsqueeze(1)  # B x 1 x H x W
        r4, r3, r2 = self.memory_encoder(frame, mask, others, owner)
        features = MemoryFeatures(*self.kv_m_r4(r4), *self.kv_m_r3(r3), *self.kv_m_r2(r2))
        return MemoryFeatures(**self.memory_features(vars(features)))

    # 2. query ---------------------------------------------------------------------------------------
    def encode_query(self, frame: Tensor) -> QueryFeatures:
        """frame: 1 x 3 x H x W RGB in [0, 1], H, W multiples of 16 (N x 3 x H x W for a batch of
        N videos)."""
        r4, r3, r2 = self.query_encoder(frame)
        k4, v4 = self.kv_q_r4(r4)
        k3, _ = self.kv_q_r3(r3)
        k2, _ = self.kv_q_r2(r2)
        keys = self.query_features({"k4": k4, "v4": v4, "k3": k3, "k2": k2})
        return QueryFeatures(**keys, f3=r3, f2=r2)

    # 3. read ----------------------------------------------------------------------------------------
    def read(
        self,
        bank: MemoryBank,
        query: QueryFeatures,
        config: ReadConfig,
        owner: Tensor | None = None,
    ) -> ReadOut:
        """Read the memory for the query frame: the r4 read (``config.variant``), then the r3 and
        r2 reads (``config.fine``), guided by the r4 affinity. ``owner``: as in
        :meth:`encode_memory`."""
        mk4, mv4 = bank.r4()
        B = mk4.shape[0]
        h, w = query.k4.shape[-2:]
        r4 = self.r4(mk4, mv4, per_object(query.k4, B, owner), bank.track, config)
        guidance = Guidance(r4.affinity, h * w, config.guidance)  # shared by r3 and r2
        mk3, mv3 = bank.fine("r3")
        read3 = self.r3(mk3, mv3, per_object(query.k3, B, owner), guidance, config)
        mk2, mv2 = bank.fine("r2")
        read2 = self.r2(mk2, mv2, per_object(query.k2, B, owner), guidance, config)
        return ReadOut(r4.readout, read3, read2, r4.next_track)

    # 4. decode -------------------------------------------------------------------------------------
    def decode(self, query: QueryFeatures, readout: ReadOut, owner: Tensor | None = None) -> Tensor:
        """Per-object foreground probabilities B x H x W (padded size) from the read-outs."""
        B = readout.r4.shape[0]
        r4 = torch.cat([readout.r4, per_object(query.v4, B, owner)], dim=1)  # B x 2Cv x h x w
        logits = self.decoder(r4, query.f3, readout.r3, query.f2, readout.r2, owner)
        return self.output.object_probs(torch.softmax(logits, dim=1)[:, 1])

    def aggregate(self, object_probs: Tensor) -> tuple[Tensor, Tensor]:
        """Soft aggregation: B x H x W object probabilities -> (B+1) x H x W logits over background
        and objects, and the frame's probabilities ``softmax(logits, 0)`` (what the next step puts
        into memory)."""
        logits = self.output.logits(ops.soft_aggregate(object_probs))
        return logits, self.output.probs(torch.softmax(logits, dim=0))


def owners(objects_per_video: Sequence[int], device: torch.device | None = None) -> Tensor:
    """(2, 1, 3) -> tensor([0, 0, 1, 2, 2, 2]): the video of each object row of a batch."""
    counts = torch.as_tensor(objects_per_video, device=device)
    return torch.repeat_interleave(torch.arange(len(counts), device=device), counts)


def per_object(x: Tensor, B: int, owner: Tensor | None) -> Tensor:
    """Query features N x ... -> B x ...: the same frame for every object (N = 1, ``owner`` None),
    or each object row's own video's frame."""
    return x.expand(B, *x.shape[1:]) if owner is None else x[owner]
