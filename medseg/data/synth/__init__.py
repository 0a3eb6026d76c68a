"""The generative training stream (SynthSeg-style): label maps in, random realistic images out.

Modules:
    source      the template's 1 mm tissue maps and distance maps, padded for a head around the brain
    fields      smooth random fields and separable Gaussian blur (torch, CPU-friendly)
    params      one volume's random choices, drawn apart from their application (seeded)
    head        generation labels outside the brain: CSF rim, skull, scalp, fat, orbits, neck
    contrast    per-label intensity models: T1-, T2-, PD-like and arbitrary
    generator   ``synthesize(source, params)``: one image and its tissue labels on the network grid
    dataset     a torch Dataset of training patches, seeded by (seed, epoch, index)
    validation  the fixed shifted validation volumes written to a run folder
"""
