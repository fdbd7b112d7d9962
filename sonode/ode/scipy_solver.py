"""``method="scipy_solver"``: scipy.integrate.solve_ivp behind odeint (scipy imported only here, lazily).

options: solver (a solve_ivp method name, default "LSODA"), min_step, max_step (norm is accepted
and unused, as in torchdiffeq). The result carries no autograd graph (scipy works on numbers).
"""

from __future__ import annotations

import torch

from .methods import Method, register
from .records import SolveResult, SolveStats, real_dtype


def _solve(
    func, y0: torch.Tensor, t_out: list[float], opts, record_steps: bool, t=None
) -> SolveResult:
    from scipy.integrate import solve_ivp  # lazily: scipy is only needed by this method

    shape, dtype, device = y0.shape, y0.dtype, y0.device
    counter = [0]

    def rhs(t, y):
        counter[0] += 1
        with torch.no_grad():
            yt = torch.as_tensor(y).to(device=device, dtype=dtype).reshape(shape)
            return (
                func(torch.tensor(t, dtype=real_dtype(y0), device=device), yt)
                .reshape(-1)
                .cpu()
                .numpy()
            )

    def tol(v):
        return v.reshape(-1).cpu().numpy() if isinstance(v, torch.Tensor) else v

    y_np = y0.detach().reshape(-1).cpu().numpy()
    lo, hi = min(t_out), max(t_out)
    kwargs = {"min_step": opts.min_step} if opts.option("solver", "LSODA") == "LSODA" else {}
    sol = solve_ivp(
        rhs,
        (t_out[0], t_out[-1]),
        y_np,
        method=opts.option("solver", "LSODA"),
        t_eval=t_out,
        rtol=tol(opts.rtol),
        atol=tol(opts.atol),
        max_step=opts.max_step,
        **kwargs,
    )
    if not sol.success or sol.y.shape[1] != len(t_out):
        raise RuntimeError(
            f"scipy_solver ({opts.option('solver', 'LSODA')}) failed between t={lo!r} and {hi!r}: {sol.message}"
        )
    ys = torch.as_tensor(sol.y.T).to(device=device, dtype=dtype).reshape(len(t_out), *shape)
    ys[0] = y0.detach()
    n_steps = int(getattr(sol, "nfev", counter[0]))
    return SolveResult(ys=ys, stats=SolveStats(nfev=counter[0], n_steps=n_steps, n_rejected=0))


register(
    Method(
        "scipy_solver",
        order=0,
        adaptive=True,
        options=("solver", "min_step", "max_step", "norm"),
        solver=_solve,
        replayable=False,
        callbacks=(),  # scipy drives the steps
        description="scipy.integrate.solve_ivp (LSODA by default); no autograd graph",
    )
)
