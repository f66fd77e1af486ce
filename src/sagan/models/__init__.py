"""Generator and discriminator."""

from sagan.models.discriminator import Discriminator
from sagan.models.generator import Generator

__all__ = ["Discriminator", "Generator"]
