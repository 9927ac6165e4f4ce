"""Runtime attacks (JMA, ML-C&W, PGD) for one-hot, multi-label, top-k and ECOC outputs.

Every attack has the same interface (:class:`~.base.Attack`):
``attack.run(victim, x0, target, untargeted=False) -> AttackResult``, batched over images,
on the victim's device (CUDA when the module lives there). ``ATTACKS`` maps a spec's method
name to its class; options are the dataclass fields.

Importing this package imports torch; ``robustc`` itself never imports it.
"""

from robustc.runtime.attacks.base import Attack, AttackResult, Victim
from robustc.runtime.attacks.encodings import Ecoc, Encoding, MultiLabel, OneHot, TopK
from robustc.runtime.attacks.jma import JMA
from robustc.runtime.attacks.mlcw import MLCW
from robustc.runtime.attacks.pgd import PGD

ATTACKS: dict[str, type[Attack]] = {"jma": JMA, "mlcw": MLCW, "pgd": PGD}

__all__ = ["ATTACKS", "JMA", "MLCW", "PGD", "Attack", "AttackResult", "Ecoc", "Encoding",
           "MultiLabel", "OneHot", "TopK", "Victim"]
