"""Make the checkout importable as ansible_collections.ikemesh.mesh (as ansible-test does)."""

import os
import sys

COLLECTIONS_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "collections")
if COLLECTIONS_ROOT not in sys.path:
    sys.path.insert(0, COLLECTIONS_ROOT)
