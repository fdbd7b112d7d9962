"""Computed ``adjoint_params``: tensors with a history, e.g. a start energy from another solve.

The backward pass of `odeint_adjoint` must return dL/dθ for each parameter with the *other*
parameters held fixed; the outer autograd graph then carries dL/dθ on through θ's own history.
When func reads a parameter e that was computed from another parameter W (or from another adjoint
solve), differentiating func with e as it is would also walk e's history: W would be counted twice
(once here, once by the outer graph) and the inner ``autograd.grad`` would free e's history, so the
outer backward then fails ("Trying to backward through the graph a second time").

`held_fixed` therefore swaps every such e, where func reads it (a closure or global variable, a module
attribute or buffer, recursively through submodules, bound methods and wrapper objects), for a
detached leaf (made once per solve by `leaf_substitutes`) while the forward solve and the backward
sweep run, and restores it afterwards: a piece the forward tapes then refers to the same leaf.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_MAX_DEPTH = 6  # wrappers (interface.Field, partial, bound method, module, submodule, closure)


def leaf_substitutes(params: list[torch.Tensor]) -> dict[int, torch.Tensor]:
    """id(p) -> a detached leaf of p (same storage), for every computed tensor p of ``params``."""
    return {id(p): p.detach().requires_grad_() for p in params if p.grad_fn is not None}


@contextmanager
def held_fixed(
    func, params: list[torch.Tensor], subs: dict[int, torch.Tensor], check: bool = True
) -> Iterator[list[torch.Tensor]]:
    """Within the block func reads the leaves ``subs`` (`leaf_substitutes`) in place of the
    computed tensors of ``params``.

    Yields the list of tensors to differentiate against (``params`` with each computed tensor that
    was found replaced by its leaf). With ``check``, RuntimeError if a computed tensor whose
    history reaches another of ``params`` cannot be found inside func (its gradient would be
    double counted).
    """
    if not subs:
        yield list(params)
        return
    restores: list = []
    found: set[int] = set()
    try:
        _swap(func, subs, restores, found, set(), 0)
        for p in params:
            if check and id(p) in subs and id(p) not in found and _reaches(p, params):
                raise RuntimeError(
                    "odeint_adjoint: an adjoint_params tensor computed from another of the adjoint "
                    f"params (shape {tuple(p.shape)}) is not a closure or global variable or module "
                    "attribute of func, so its gradient cannot be separated; store it on func (e.g. "
                    "self.x = x in an nn.Module) or pass it detached"
                )
        yield [subs[id(p)] if id(p) in found else p for p in params]
    finally:
        for restore in reversed(restores):
            restore()


def _swap(obj, subs: dict, restores: list, found: set, seen: set, depth: int) -> None:
    """Replace, in place, the tensors of ``subs`` referenced by obj (recursively); log restores."""
    if depth > _MAX_DEPTH or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, types.MethodType):
        _swap(obj.__self__, subs, restores, found, seen, depth + 1)
        _swap(obj.__func__, subs, restores, found, seen, depth + 1)
        return
    if isinstance(obj, functools.partial):
        for value in (obj.func, *obj.args, *obj.keywords.values()):
            _swap(value, subs, restores, found, seen, depth + 1)
        return
    if isinstance(obj, types.FunctionType):
        for cell in obj.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if isinstance(value, torch.Tensor):
                if id(value) in subs:
                    cell.cell_contents = subs[id(value)]
                    found.add(id(value))
                    restores.append(functools.partial(setattr, cell, "cell_contents", value))
            else:
                _swap(value, subs, restores, found, seen, depth + 1)
        for name in obj.__code__.co_names:  # module-level variables it reads
            value = obj.__globals__.get(name)
            if isinstance(value, torch.Tensor) and id(value) in subs:
                obj.__globals__[name] = subs[id(value)]
                found.add(id(value))
                restores.append(functools.partial(obj.__globals__.__setitem__, name, value))
        return
    if isinstance(obj, nn.Module):
        for name, value in list(obj._buffers.items()):
            if value is not None and id(value) in subs:
                obj._buffers[name] = subs[id(value)]
                found.add(id(value))
                restores.append(functools.partial(obj._buffers.__setitem__, name, value))
        for child in obj._modules.values():
            _swap(child, subs, restores, found, seen, depth + 1)
    attributes = getattr(obj, "__dict__", None)
    if not isinstance(attributes, dict) or isinstance(obj, type):
        return
    for name, value in list(attributes.items()):
        if isinstance(value, torch.Tensor):
            if id(value) in subs:
                attributes[name] = subs[id(value)]
                found.add(id(value))
                restores.append(functools.partial(attributes.__setitem__, name, value))
        elif isinstance(
            value, (nn.Module, types.FunctionType, types.MethodType, functools.partial)
        ):
            _swap(value, subs, restores, found, seen, depth + 1)
        elif hasattr(value, "__dict__") and not isinstance(value, (type, types.ModuleType)):
            _swap(value, subs, restores, found, seen, depth + 1)


def _reaches(tensor: torch.Tensor, params: list[torch.Tensor]) -> bool:
    """Whether ``tensor``'s autograd history contains another tensor of ``params``."""
    targets = {p.grad_fn for p in params if p is not tensor and p.grad_fn is not None}
    leaves = {id(p) for p in params if p is not tensor and p.grad_fn is None}
    stack, visited = [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in visited:
            continue
        visited.add(node)
        if node in targets or id(getattr(node, "variable", None)) in leaves:
            return True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False
