"""espnet2_ext: TokenVerse++ (task vectors, partial labels, task tokens) on an XLSR-Transducer for ESPnet2.

Importing the package is cheap: it keeps ESPnet's import offline and arranges for our classes to be registered in
ESPnet's ``ASRTask`` choices when (and only when) ``espnet2.tasks.asr`` gets imported. See ``registry.py``.
An environment with a torch / ESPnet / S3PRL older than supported fails here with one line (``stack.py``).
"""

from espnet2_ext._import_hook import install as _install_hook
from espnet2_ext.stack import check_stack as _check_stack

__version__ = "0.1.0"

_check_stack()
_install_hook()
