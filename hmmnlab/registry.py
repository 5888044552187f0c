"""The registries of memory reads: the ground floor, importing nothing of hmmnlab.

``KERNELS`` (r4 read variants) and ``FINE_READS`` (r3/r2 reads) map a name to its function; a kernel
registers the :class:`~hmmnlab.config.ReadConfig` parameters its variant sets unless the caller
gives them (``KERNEL_DEFAULTS``, e.g. KMN's sigma), a fine read the bytes of working memory it
needs (``FINE_READ_MEMORY``, asked by :mod:`hmmnlab.evaluation.resources`). The functions live in
:mod:`hmmnlab.model.reads` (the built-in ones) or in the user's code::

    @register_kernel("box", defaults={"sigma": 1.0})
    def box_kernel(logits, track, h, w, config, module): ...

    @register_fine_read("sparse", memory=sparse_bytes)
    def sparse_read(mk, mv, qk, guidance, config, module): ...

:class:`~hmmnlab.config.ReadConfig` checks its names against :func:`kernel_names` and
:func:`fine_read_names`: the registered names and the built-in ones, which are declared here
(``BUILTIN_KERNELS``, ``BUILTIN_FINE_READS``) so that a configuration can be checked before
:mod:`hmmnlab.model.reads` (and torch) is imported; a test checks that reads registers them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

#: ``fn(logits, track, h, w, config, module)``: logits B x THW x HW, track B x (T-1)HW or None,
#: h x w the r4 grid, module the :class:`~hmmnlab.model.reads.KernelGuidedRead` (its hook points:
#: ``module.flow(x)``...). Returns the kernel B x THW x HW, a :class:`~hmmnlab.ops.KernelTrack`
#: (kernel plus what it tracked), or None (no kernel).
KernelFn = Callable[..., object]
#: ``fn(mk, mv, qk, guidance, config, module)``: fine memory B x C x T' x sh x sw, query keys
#: B x Ck x sh x sw, the step's :class:`~hmmnlab.model.reads.Guidance`, and the
#: :class:`~hmmnlab.model.reads.FineRead` module (``.scale``, ``.s``, hook points
#: ``module.attention(x)``...). Returns the read-out B x Cv x sh x sw.
FineReadFn = Callable[..., object]
#: ``fn(num_objects, hw, frames, config)``: bytes of working memory of a fine read's two scales for
#: ``num_objects`` objects, ``hw`` positions of the padded r4 grid and ``frames`` r4 memory frames.
MemoryFn = Callable[[int, int, int, object], int]

KERNELS: dict[str, KernelFn] = {}
FINE_READS: dict[str, FineReadFn] = {}
KERNEL_DEFAULTS: dict[str, dict] = {}  # variant name -> ReadConfig fields it sets by default
FINE_READ_MEMORY: dict[str, MemoryFn] = {}  # fine read name -> its working memory in bytes

#: The names :mod:`hmmnlab.model.reads` registers (declared for checks made before it is imported).
BUILTIN_KERNELS = ("hmmn", "hmmn-paper", "kmn", "stm")
BUILTIN_FINE_READS = ("topk", "dense", "none")


def _register(registry: dict, what: str, name: str, on_register: Callable[[], None]) -> Callable:
    def decorate(fn):
        if not callable(fn):
            raise TypeError(f"register a function as the {what} {name!r}, got {type(fn).__name__}")
        if name in registry:
            raise ValueError(f"an {what} named {name!r} is already registered")
        registry[name] = fn
        on_register()
        return fn

    return decorate


def register_kernel(
    name: str, *, defaults: Mapping[str, object] | None = None
) -> Callable[[KernelFn], KernelFn]:
    """Register an r4 kernel function (see :data:`KernelFn`) under ``name`` (names are unique);
    ``defaults``: ReadConfig fields the variant sets unless the caller gives them
    (:func:`hmmnlab.model.reads.read_variant`)."""

    def keep_defaults() -> None:
        if defaults:
            KERNEL_DEFAULTS[name] = dict(defaults)

    return _register(KERNELS, "r4 read variant", name, keep_defaults)


def register_fine_read(
    name: str, *, memory: MemoryFn | None = None
) -> Callable[[FineReadFn], FineReadFn]:
    """Register an r3/r2 read function (see :data:`FineReadFn`) under ``name`` (names are unique);
    ``ReadConfig(fine=name)`` then uses it at both fine scales. ``memory`` (see :data:`MemoryFn`):
    its working memory, for :func:`hmmnlab.evaluation.resources.peak_bytes` (None: counted as
    nothing)."""

    def keep_memory() -> None:
        if memory is not None:
            FINE_READ_MEMORY[name] = memory

    return _register(FINE_READS, "fine read", name, keep_memory)


def kernel_names() -> tuple[str, ...]:
    """Every r4 read variant: the built-in ones, then those registered since."""
    return tuple(dict.fromkeys((*BUILTIN_KERNELS, *KERNELS)))


def fine_read_names() -> tuple[str, ...]:
    """Every fine read: the built-in ones, then those registered since."""
    return tuple(dict.fromkeys((*BUILTIN_FINE_READS, *FINE_READS)))


def describe(registry: Mapping[str, Callable]) -> dict[str, str]:
    """name -> the first line of its function's docstring (for help texts and docs tables)."""
    return {name: (fn.__doc__ or "").strip().split("\n")[0] for name, fn in registry.items()}
