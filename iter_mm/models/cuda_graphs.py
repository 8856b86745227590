"""CUDA graphs of ITER's networks: each network call captured once per input signature, then replayed.

Eagerly, one call of phi_e or phi_r is hundreds of small kernel launches, and a refinement runs each up to T
times: on a GPU the loop is bound by launches, not arithmetic. A graph replays a whole call with one launch.

A network call is captured the first time its signature is seen: the network, the shapes, dtypes and device of
the inputs, the autocast state, and the storage and version of every parameter and buffer (an in-place weight
update, e.g. ``load_state_dict``, changes the version and so captures anew). The capture:

* runs one eager warm-up call on the side stream it then captures on (lazy library initialisation is not
  capturable);
* turns autocast's weight cache off (a cached cast is freed when the autocast region ends while a graph would
  still read it) and opens a fresh :func:`~.archs.fast_ops.call_cache` scope, so that weight-derived values are
  computed inside the graph;
* keeps the tensors that module-level caches hand to the forward (token reorder indices, shift masks) alive as
  long as the graph (:func:`~.archs.fast_ops.retaining`);
* gives each graph its own memory pool.

A replay copies the inputs into the graph's static buffers and returns a copy of its static output. The last
``max_graphs`` signatures are kept per network set; capturing costs about two eager calls, so graphs pay off when
many calls share a size (the refinement steps, tiles, a folder of same-size photos, benchmarks).
"""

from __future__ import annotations

import collections
import contextlib
import weakref
from typing import Callable, Iterator, NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from .archs import fast_ops

__all__ = ['GraphRunner', 'graph_runner', 'cuda_graphs_available']


def cuda_graphs_available(device: torch.device) -> bool:
    """True when calls on ``device`` can be captured (a CUDA device).

    Args:
        device (torch.device): the device of the inputs.

    Returns:
        bool: whether CUDA graphs can be used.
    """
    return device.type == 'cuda' and torch.cuda.is_available()


class Captured(NamedTuple):
    """One captured call: replay() recomputes ``output`` from ``inputs`` (static buffers)."""

    replay: Callable[[], None]
    inputs: Tuple[Tensor, ...]
    output: Tensor
    keep_alive: tuple  # the graph itself and the cached tensors it reads


def _autocast_state(device_type: str) -> tuple:
    if torch.is_autocast_enabled(device_type):
        return (True, torch.get_autocast_dtype(device_type))
    return (False, None)


def _no_weight_cache(device_type: str):
    """Autocast as it is, but without the weight cache (a no-op when autocast is off)."""
    enabled, dtype = _autocast_state(device_type)
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype, cache_enabled=False)


def capture_cuda(fn: Callable[..., Tensor], inputs: Tuple[Tensor, ...]) -> Captured:
    """Capture ``fn(*inputs)`` (``inputs`` are the static buffers) into a CUDA graph with its own pool.

    The warm-up and the capture run on the same side stream: libraries create per-stream handles and workspaces
    lazily, which must not happen inside a capture.

    Args:
        fn (callable): the call to capture, returning one tensor.
        inputs (tuple[Tensor]): static input buffers on a CUDA device.

    Returns:
        Captured: ``replay`` recomputes ``output`` from the buffers.
    """
    device = inputs[0].device
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side), _no_weight_cache('cuda'), fast_ops.call_cache():
        fn(*inputs)  # warm-up: library handles, kernel selection, lazy module-level caches
    graph = torch.cuda.CUDAGraph()
    retained: list = []
    with fast_ops.retaining(retained), _no_weight_cache('cuda'), fast_ops.call_cache():
        with torch.cuda.graph(graph, stream=side):
            output = fn(*inputs)
    torch.cuda.current_stream(device).wait_stream(side)
    return Captured(graph.replay, inputs, output, (graph, tuple(retained)))


def _weights_signature(module: nn.Module) -> tuple:
    return tuple((t.data_ptr(), t._version) for t in (*module.parameters(), *module.buffers()))


class GraphRunner:
    """Runs ``fn(*inputs)`` of a network through graphs captured per signature (see the module docstring).

    Args:
        capture (callable): ``capture(fn, static_inputs) -> Captured`` (tests pass another). Default:
            :func:`capture_cuda`.
        max_graphs (int): signatures kept (the oldest is dropped, with its memory pool). Default: 16.
    """

    def __init__(self, capture: Callable[..., Captured] = capture_cuda, max_graphs: int = 16) -> None:
        self.capture, self.max_graphs = capture, max_graphs
        self.graphs: 'collections.OrderedDict[tuple, Captured]' = collections.OrderedDict()
        self.captures = 0  # how many captures were made (diagnostics, tests)
        self._frozen: Optional[dict] = None  # id(module) -> weights signature, inside fixed_weights()

    @contextlib.contextmanager
    def fixed_weights(self) -> Iterator[None]:
        """Within the block the weights are read once per network (the caller promises not to change them)."""
        before, self._frozen = self._frozen, {}
        try:
            yield
        finally:
            self._frozen = before

    def _weights_key(self, module: nn.Module) -> tuple:
        if self._frozen is None:
            return _weights_signature(module)
        key = self._frozen.get(id(module))
        if key is None:
            key = self._frozen[id(module)] = _weights_signature(module)
        return key

    def __call__(self, module: nn.Module, fn: Callable[..., Tensor], *inputs: Tensor) -> Tensor:
        """``fn(*inputs)`` where ``fn`` computes with ``module``'s weights only.

        Args:
            module (nn.Module): the network whose weights ``fn`` reads (part of the signature).
            fn (callable): the call, e.g. the module itself or one of its methods.
            *inputs (Tensor): its tensor inputs (shapes, dtypes and devices are part of the signature).

        Returns:
            Tensor: a fresh output tensor (a clone of the graph's static output).

        Raises:
            RuntimeError: called with gradients enabled.
        """
        if torch.is_grad_enabled():
            raise RuntimeError('CUDA graphs of ITER are for inference: call under torch.no_grad()')
        device_type = inputs[0].device.type
        key = (
            id(module),
            getattr(fn, '__qualname__', type(fn).__qualname__),
            _autocast_state(device_type),
            fast_ops.fast_kernels_enabled(),
            self._weights_key(module),
            tuple((tuple(x.shape), x.dtype, x.device) for x in inputs),
        )
        entry = self.graphs.get(key)
        if entry is None:
            entry = self.capture(fn, tuple(x.clone() for x in inputs))
            self.captures += 1
            self.graphs[key] = entry
            while len(self.graphs) > self.max_graphs:
                self.graphs.popitem(last=False)
        else:
            self.graphs.move_to_end(key)
            for buf, x in zip(entry.inputs, inputs):
                buf.copy_(x)
        entry.replay()
        return entry.output.clone()


_RUNNERS: 'weakref.WeakKeyDictionary[nn.Module, GraphRunner]' = weakref.WeakKeyDictionary()


def graph_runner(net: nn.Module) -> GraphRunner:
    """The :class:`GraphRunner` of ``net``.

    One per network set, kept while ``net`` lives; not an attribute, so copying or pickling ``net`` is unaffected.

    Args:
        net (nn.Module): the ITER network set.

    Returns:
        GraphRunner: created on first use.
    """
    runner = _RUNNERS.get(net)
    if runner is None:
        runner = _RUNNERS[net] = GraphRunner()
    return runner
