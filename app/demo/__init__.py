"""The built-in demo: a procedural H&E slide with planted lesions and their outlines.

``generate.generate_demo_slide(out, width, height, seed, mpp)`` is the job;
``layout.planned_lesion_count(seed)`` says which seeds have lesions without drawing the
slide. Nothing is imported here, so that the command line starts fast.
"""
