"""Where the applications plug into the engine, by module path: the config sections they own and the tasks
they provide.

    register_section("finetune", "jaxcnn.finetune.config")     # config.finetune: that module's section()
    register_task_provider("yolo", "jaxcnn.detection")          # config.task = "yolo": that package's TASKS

Registering imports nothing. jaxcnn.train reads these tables and imports a module the first time it needs it
(a section when a config is first built, a provider when a config first names one of its tasks), so the engine
names no application and an application costs no import until it is used. The package root registers jaxcnn's
own applications; another package calls the same functions, public as jaxcnn.train.register_section and
jaxcnn.train.register_task_provider. What a section module and a provider package hold is described in
jaxcnn.train.config and jaxcnn.train.tasks.
"""

from __future__ import annotations

# config section name -> the dotted name of the module that defines it, in the order base_config() lists them
SECTIONS: dict[str, str] = {}
# task name -> the dotted name of the package whose TASKS (and WORKDIR_SCORERS) provide it
TASK_PROVIDERS: dict[str, str] = {}


def _register(table: dict, what: str, name: str, module: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{what} name must be an identifier, got {name!r}")
    if not isinstance(module, str) or not all(part.isidentifier() for part in module.split(".")):
        raise ValueError(f"{what} {name!r}: give the module as a dotted name such as 'mypackage.config', got "
                         f"{module!r}")
    if table.get(name, module) != module:
        raise ValueError(f"{what} {name!r} is defined twice ({table[name]} and {module})")
    table[name] = module


def register_section(name: str, module: str) -> None:
    """Make `config.NAME` the section that `module` (a dotted module name, imported when a config is first
    built) defines. Registering the same pair again is a no-op; another module for the same name is refused."""
    _register(SECTIONS, "config section", name, module)


def register_task_provider(task: str, package: str) -> None:
    """Make `config.task = TASK` come from `package` (a dotted name, imported the first time a config names
    one of its tasks), which lists it in its TASKS. The same pair again is a no-op; another package is refused."""
    _register(TASK_PROVIDERS, "task", task, package)
