"""The cells of an ablation grid as Ray tasks: importing and connecting to Ray, the device of
the tasks, submitting the cells and collecting their notes."""

from __future__ import annotations

from hmmnlab.ablation.cells import Cell, run_cell

#: What to install for ``executor="ray"`` (``hmmnlab ablate --ray``).
CLUSTER_INSTALL = 'pip install "hmmnlab[cluster]"'


def import_ray():
    """The ``ray`` module, or a RuntimeError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RuntimeError(f"running on Ray needs Ray: {CLUSTER_INSTALL}") from None
    return ray


#: Seconds to wait for a Ray cluster's address to answer before giving up.
RAY_CONNECT_TIMEOUT_S = 10.0


def ray_host_port(address: str) -> tuple[str, int] | None:
    """The (host, port) a Ray address connects to (``ray://head:10001``, ``head:6379``, ``head``:
    Ray's port 6379), or None for ``auto`` / ``local`` (found by Ray itself)."""
    if address in ("auto", "local"):
        return None
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep:
        return rest, 6379
    if not port.isdigit() or not host:
        raise ValueError(f"--ray {address}: expected auto, HOST[:PORT] or ray://HOST:PORT")
    return host, int(port)


def connect_ray(ray, address: str | None, *, num_cpus: int | None = None,
                timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:  # fmt: skip
    """``ray.init``: a local Ray (no ``address``) or the cluster at ``address``, first checking
    within ``timeout`` seconds that the address answers (Ray itself retries for minutes). A cluster
    that cannot be reached is a RuntimeError naming the address."""
    import socket

    if not address:
        ray.init(num_cpus=num_cpus, include_dashboard=False)
        return
    target = ray_host_port(address)
    if target is not None:
        try:
            socket.create_connection(target, timeout=timeout).close()
        except OSError as err:
            reason = "no answer" if isinstance(err, TimeoutError) else (err.strerror or str(err))
            raise RuntimeError(
                f"cannot reach the Ray cluster at {address} ({target[0]}:{target[1]}: {reason} "
                f"within {timeout:g} s); start it (ray start --head) or give another --ray address"
            ) from None
    try:
        ray.init(address=address)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as err:
        lines = str(err).strip().splitlines()
        raise RuntimeError(
            f"cannot connect to the Ray cluster at {address}: {lines[0] if lines else err!r}"
        ) from None


def _ray_device(ray, device: str | None) -> str:
    """The device of the cells on Ray: ``cuda`` (the GPU Ray gives each task) when asked for or,
    for None, when the cluster has GPUs; else ``cpu``."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if device is None:
        return "cuda" if gpus else "cpu"
    kind = str(device).split(":")[0]
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {str(device)!r}: expected 'cpu' or 'cuda'")
    if kind == "cuda" and not gpus:
        raise ValueError(f"device {str(device)!r} requested but the Ray cluster has no GPU")
    return kind


def _run_on_ray(ray, model, cells: list[Cell], bar, *, max_retries: int) -> dict:
    """Submit every cell as a Ray task, collect the notes as tasks finish (updating ``bar``), and
    raise a RuntimeError naming the cells that failed once all the others are done."""
    num_gpus = 1 if any(cell.device == "cuda" for cell in cells) else 0
    num_cpus = max((cell.threads or 1) for cell in cells)
    task = ray.remote(run_cell).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                        max_retries=max_retries)  # fmt: skip
    model_ref = ray.put(_on_cpu(model))
    pending = {task.remote(model_ref, cell): cell for cell in cells}
    notes, failed = {}, []
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cell = pending.pop(ref)
                try:
                    notes[cell.label, cell.sequence] = ray.get(ref)
                except ray.exceptions.RayError as err:  # the task raised, or its worker died
                    failed.append(f"{cell.label}/{cell.sequence}: {_one_line(err)}")
                bar.update()
    finally:
        for ref in pending:  # interrupted: stop what is still queued or running
            ray.cancel(ref)
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(cells)} cells failed ({'; '.join(failed)}); the others are "
            f"saved: run again to redo the failed ones"
        )
    return notes


def _one_line(err: Exception) -> str:
    """A Ray error as one line: the task's own exception (``RayTaskError.cause``) where there is
    one, its type and the first line of its message."""
    cause = getattr(err, "cause", None) or err
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def _on_cpu(model):
    """``model`` if its parameters are on the CPU, else a CPU copy (the one sent to the workers)."""
    import copy

    if all(p.device.type == "cpu" for p in model.parameters()):
        return model
    return copy.deepcopy(model).cpu()
