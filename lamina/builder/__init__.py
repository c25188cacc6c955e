"""The image builder: a parsed Dockerfile -> images, one per step, Docker's classic output.

Modules: ``builder`` (stages, steps, the classic ``Step n/m`` output, the entry point
:func:`lamina.builder.builder.build`), ``state`` (what a stage carries from step to step,
an instruction's cache and history text), ``sources`` (COPY/ADD and the sources steps read:
stages, images, the context, URLs), ``cache`` (cache keys and the build cache table),
``run`` (RUN steps: a container on the step's layers, ``--mount``), ``copy`` (COPY/ADD
staging written through descriptors), ``context`` (the build context read in place, the
hash cache), ``fastpath`` (replay of fully cached builds without importing the builder).

Importing this package imports none of them: a replayed build loads ``fastpath`` alone.
"""
