"""google-research cmmd's ``distance.mmd`` written out in numpy (jnp -> np), line for
line: the reference the CMMD tests (``tests/test_cmmd.py``) and the CMMD bench row
(``scripts/bench.py``) compare ours with. σ = 10, scale = 1000 (its ``_SIGMA``,
``_SCALE``); dense, in ``dtype`` (float32 is JAX's default, what their code computes in).

    >>> x = np.eye(3)
    >>> google_research_mmd(x, x)
    0.0
"""

from __future__ import annotations

import numpy as np

SIGMA, SCALE = 10, 1000  # google-research cmmd/distance.py: _SIGMA, _SCALE


def google_research_mmd(x: np.ndarray, y: np.ndarray, dtype=np.float64) -> float:
    """cmmd/distance.py ``mmd(x, y)``, line for line (jnp -> np); its main.py calls
    ``mmd(ref_embs, eval_embs)``."""
    x = np.asarray(x, dtype)
    y = np.asarray(y, dtype)
    x_sqnorms = np.diag(np.matmul(x, x.T))
    y_sqnorms = np.diag(np.matmul(y, y.T))
    gamma = 1 / (2 * SIGMA**2)
    k_xx = np.mean(np.exp(-gamma * (-2 * np.matmul(x, x.T) + np.expand_dims(x_sqnorms, 1)
                                    + np.expand_dims(x_sqnorms, 0))))
    k_xy = np.mean(np.exp(-gamma * (-2 * np.matmul(x, y.T) + np.expand_dims(x_sqnorms, 1)
                                    + np.expand_dims(y_sqnorms, 0))))
    k_yy = np.mean(np.exp(-gamma * (-2 * np.matmul(y, y.T) + np.expand_dims(y_sqnorms, 1)
                                    + np.expand_dims(y_sqnorms, 0))))
    return float(SCALE * (k_xx + k_yy - 2 * k_xy))
