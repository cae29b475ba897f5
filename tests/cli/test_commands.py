import dataclasses

from ssl_coded.eval.robustness.harness import AttackSettings

from ssl_coded.training.config import AttackConfig


def test_the_recipe_attack_section_and_the_harness_settings_agree():
    # commands.attack_runs builds AttackSettings(**asdict(config.attack)): same fields, same defaults
    recipe = {f.name: getattr(AttackConfig(), f.name) for f in dataclasses.fields(AttackConfig)}
    harness = {f.name: getattr(AttackSettings(), f.name) for f in dataclasses.fields(AttackSettings)}
    assert recipe == harness
