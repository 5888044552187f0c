"""Hook points: named places in the network where a tensor can be looked at.

A :class:`HookPoint` is an identity module (the idea of TransformerLens's ``HookPoint``). The model
passes interesting tensors through one, e.g. ``read_r4.hook_kernel``. With nothing attached this costs
one module call; attach with :func:`capture` (or plain ``register_forward_hook``) to record them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import Tensor, nn


class HookPoint(nn.Module):
    """Identity module marking a tensor worth looking at; its module path is its name."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class HookGroup(nn.ModuleDict):
    """Hook points for several tensors of one stage, e.g. ``encode_query_hooks.k4``."""

    def __init__(self, names: list[str]) -> None:
        super().__init__({name: HookPoint() for name in names})

    def forward(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        """Pass every tensor of ``tensors`` through the hook point of its name."""
        return {name: self[name](x) if name in self else x for name, x in tensors.items()}


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """All hook points of ``model`` by name (module path), in definition order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, HookPoint)}


NamesFilter = Callable[[str], bool] | list[str] | tuple[str, ...] | str | None


def _accept(names_filter: NamesFilter) -> Callable[[str], bool]:
    if names_filter is None:
        return lambda name: True
    if isinstance(names_filter, str):
        return lambda name: name == names_filter
    if callable(names_filter):
        return names_filter
    wanted = set(names_filter)
    return lambda name: name in wanted


@contextmanager
def capture(
    model: nn.Module, names_filter: NamesFilter = None, *, to_cpu: bool = False
) -> Iterator[dict[str, Tensor]]:
    """Record the tensors passing through the model's hook points while the block runs.

    Yields a dict (name -> detached tensor) filled as the model runs; a hook point that fires again
    (next frame) overwrites its entry. Hooks are removed when the block ends.
    """
    accept = _accept(names_filter)
    points = {name: hp for name, hp in hook_points(model).items() if accept(name)}
    unknown = set(names_filter) - set(points) if isinstance(names_filter, list | tuple) else set()
    if unknown:
        raise ValueError(
            f"unknown hook names {sorted(unknown)}; known: {sorted(hook_points(model))}"
        )
    cache: dict[str, Tensor] = {}
    handles = []
    for name, hp in points.items():

        def record(_module, _inputs, output, name=name):
            value = output.detach()
            cache[name] = value.cpu() if to_cpu else value

        handles.append(hp.register_forward_hook(record))
    try:
        yield cache
    finally:
        for handle in handles:
            handle.remove()
