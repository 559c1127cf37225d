"""The simulator's plot: dial level, agents by state and abandon rate over the day.

matplotlib is an optional extra (``pip install 'dialtone[plot]'``): only this module needs
it, and a dialler node never plots.
"""

from __future__ import annotations

from pathlib import Path

from dialer.simulate import SimResult
from dialtone_errors import ConfigError


def write_plot(result: SimResult, path: Path) -> None:
    """Write a PNG with three panels sharing the time axis (hours)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'dialtone[plot]'") from exc
    tl = result.timeline
    hours = [t / 3600.0 for t in tl.t]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, sharex=True, figsize=(9, 7))
    c = result.config
    fig.suptitle(f"{c.pacing}: {c.agents} agents, {c.hours:g} h")
    ax1.plot(hours, tl.dial_level, color="tab:blue")
    ax1.set_ylabel("dial level\n(lines per agent)")
    ax2.stackplot(hours, tl.busy, tl.wrap, tl.ready, labels=["talking", "wrap-up", "ready"],
                  colors=["tab:green", "tab:orange", "tab:gray"])
    ax2.set_ylabel("agents")
    ax2.legend(loc="upper right", fontsize="small")
    ax3.plot(hours, [100 * r for r in tl.abandon_rate], color="tab:red")
    ax3.axhline(100 * c.abandon_target, color="black", linestyle="--", linewidth=0.8)
    ax3.set_ylabel("abandon rate %\n(cumulative)")
    ax3.set_xlabel("hours")
    fig.tight_layout()
    try:
        fig.savefig(path, format="png", dpi=100)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        plt.close(fig)
