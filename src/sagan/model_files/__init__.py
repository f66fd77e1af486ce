"""Models as files on disk: training checkpoints (`checkpoints`), safetensors weights and their checks (`weights`),
exported generators (`exports`), pretrained folders and the generators shipped in `shipped/` (`pretrained`), and
`load_generator` / `load_discriminator`, which take any of them (`loading`)."""
