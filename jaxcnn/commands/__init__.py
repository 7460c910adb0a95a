"""The console scripts, each a thin entry point over the library: `jaxcnn-NAME` (pyproject's
[project.scripts]), `python -m jaxcnn.commands.NAME` and `python scripts/NAME.py` in a checkout all run
`jaxcnn.commands.NAME.main(argv=None) -> exit status`.

    train, evaluate, predict, ablate, prepare_data, summary, export, finetune
"""

COMMANDS = ("train", "evaluate", "predict", "ablate", "prepare_data", "summary", "export", "finetune")
