"""sonode's Adam against torch.optim.Adam: the same steps bit for bit, and a state_dict round trip."""

import torch

from sonode.model.adam import Adam


def _problem(seed: int):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(5, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(3, 2, dtype=torch.float64, generator=g, requires_grad=True)
    target = torch.randn(3, 2, dtype=torch.float64, generator=g)
    return a, b, target


def _loss(a, b, target):
    return (torch.sin(a).sum() * b - target).pow(2).sum() + a.pow(4).sum()


def _run(make, steps: int, seed: int = 0):
    a, b, target = _problem(seed)
    opt = make([{"params": [a], "lr": 0.05}, {"params": [b], "lr": 0.002}])
    for i in range(steps):
        for group, lr in zip(opt.param_groups, (0.05, 0.002), strict=False):
            group["lr"] = lr * min(1.0, (i + 1) / 4)  # warm-up, as training does
        opt.zero_grad(set_to_none=True)
        _loss(a, b, target).backward()
        opt.step()
    return a.detach().clone(), b.detach().clone(), opt


def test_adam_takes_torch_adams_steps_bit_for_bit():
    ours = _run(Adam, 30)
    theirs = _run(lambda groups: torch.optim.Adam(groups), 30)
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])


def test_adam_state_dict_round_trip_continues_identically():
    a, b, target = _problem(1)
    opt = Adam([{"params": [a], "lr": 0.05, "base_lr": 0.05}, {"params": [b], "lr": 0.002}])
    for _ in range(5):
        opt.zero_grad()
        _loss(a, b, target).backward()
        opt.step()
    saved, a_saved, b_saved = opt.state_dict(), a.detach().clone(), b.detach().clone()
    a2, b2 = a_saved.clone().requires_grad_(), b_saved.clone().requires_grad_()
    again = Adam([{"params": [a2], "lr": 1.0, "base_lr": 1.0}, {"params": [b2], "lr": 1.0}])
    again.load_state_dict(saved)
    assert again.param_groups[0]["base_lr"] == 0.05
    for opt_, x, y in ((opt, a, b), (again, a2, b2)):
        opt_.zero_grad()
        _loss(x, y, target).backward()
        opt_.step()
    assert torch.equal(a.detach(), a2.detach()) and torch.equal(b.detach(), b2.detach())
