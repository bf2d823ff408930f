"""Tools that read what runs wrote: sweep reports, the offline W&B reader."""
