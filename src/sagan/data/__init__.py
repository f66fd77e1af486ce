"""Training and evaluation data: torchvision sets held in memory, image folders and the sampler (`datasets`), and
the built-in procedural shapes (`shapes`)."""
