"""Hook points: named places in the network where a tensor can be looked at, or changed.

A :class:`HookPoint` is an identity module (the idea of TransformerLens's ``HookPoint``). The model
passes interesting tensors through one, e.g. ``r4.kernel``, and uses what comes out. With nothing
attached this costs one module call. :func:`capture` records the tensors; :func:`intervene` makes
hooks *causal*: a function on a hook point returns the tensor the rest of the network uses::

    def no_kernel(value, ctx):          # value: the tensor; ctx: a HookContext
        return torch.ones_like(value) if ctx.frame == 5 else None   # None: keep the value

    propagate(model, frames, labels, hooks={"r4.kernel": no_kernel})
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from torch import Tensor, nn


class HookPoint(nn.Module):
    """Identity module marking a tensor worth looking at; its module path is its name."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def in_use(point: HookPoint) -> bool:
    """Whether anything (a :func:`capture`, an :func:`intervene` function, a global module hook)
    is attached to ``point``: a computation that can skip building the tensor whole (the dense
    read's attention) must build it then."""
    return bool(
        point._forward_hooks
        or point._forward_pre_hooks
        or nn.modules.module._global_forward_hooks
        or nn.modules.module._global_forward_pre_hooks
    )


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


def check_names(model: nn.Module, names: Iterable[str], what: str = "hook names") -> None:
    """Raise a ValueError naming the unknown names and listing the model's hook points."""
    known = hook_points(model)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {sorted(known)}")


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
    if isinstance(names_filter, str):
        check_names(model, [names_filter])
    elif isinstance(names_filter, list | tuple):
        check_names(model, names_filter)
    accept = _accept(names_filter)
    points = {name: hp for name, hp in hook_points(model).items() if accept(name)}
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


@dataclass(frozen=True)
class HookContext:
    """Where a hook function is called: what it may base its decision on.

    frame: the frame being segmented (t >= 1); name: the hook point; object_ids: the label value of
    each object row (axis 0 of most tensors); memory_frames: the r4 memory frames read at this step,
    oldest first (the last is frame t-1, the one ``memory_features.*`` encode)."""

    frame: int
    name: str
    object_ids: tuple[int, ...]
    memory_frames: tuple[int, ...]


#: A hook function: ``fn(value, ctx)`` returns the tensor to use instead of ``value`` (same shape),
#: or None to keep ``value``.
HookFn = Callable[[Tensor, HookContext], Tensor | None]


@contextmanager
def intervene(
    model: nn.Module,
    hooks: Mapping[str, HookFn],
    *,
    frame: int,
    object_ids: tuple[int, ...],
    memory_frames: tuple[int, ...],
) -> Iterator[None]:
    """Attach causal hook functions (hook name -> ``fn(value, ctx)``) while the block runs.

    A function's return value replaces the tensor for the rest of the network (and for a
    :func:`capture` running at the same time, which records what was used); None keeps it. The
    replacement must have the value's shape; it is moved to the value's device and dtype."""
    check_names(model, hooks)
    points = hook_points(model)
    handles = []
    for name, fn in hooks.items():
        ctx = HookContext(frame, name, tuple(object_ids), tuple(memory_frames))

        def replace(_module, _inputs, output, fn=fn, ctx=ctx):
            new = fn(output, ctx)
            if new is None:
                return None
            if not isinstance(new, Tensor) or new.shape != output.shape:
                found = tuple(new.shape) if isinstance(new, Tensor) else type(new).__name__
                raise ValueError(
                    f"hook on {ctx.name} (frame {ctx.frame}) must return None or a tensor of "
                    f"shape {tuple(output.shape)}, got {found}"
                )
            if new.is_floating_point() != output.is_floating_point():
                raise ValueError(
                    f"hook on {ctx.name} (frame {ctx.frame}) returned {new.dtype} for a "
                    f"{output.dtype} tensor (indices must stay integers, values floats)"
                )
            if not new.is_floating_point() and new.numel() and int(new.min()) < 0:
                raise ValueError(
                    f"hook on {ctx.name} (frame {ctx.frame}) returned negative indices "
                    f"(min {int(new.min())}); indices count from 0"
                )
            return new.to(device=output.device, dtype=output.dtype)

        # prepend: runs before capture()'s recorders, so a trace records the replacement
        handles.append(points[name].register_forward_hook(replace, prepend=True))
    integer = [name for name in hooks if _is_index_point(name)]
    try:
        yield
    except IndexError as err:  # an index a hook returned, out of range further on
        if not integer:
            raise
        raise ValueError(
            f"frame {frame}: an index is out of range ({err}) while the hook(s) on "
            f"{', '.join(integer)} replaced integer indices; each must lie in 0..rows-1 of what "
            "it indexes (e.g. r3.topk_indices: the guidance's memory rows)"
        ) from err
    finally:
        for handle in handles:
            handle.remove()


def _is_index_point(name: str) -> bool:
    """Whether a hook point holds indices (its hook may return indices out of range)."""
    return name.endswith(("indices", "flow", "centres"))
