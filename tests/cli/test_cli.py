import pytest

from ssl_coded.cli import main


def test_recipes_lists_every_bundled_recipe(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in ("simclr-digits", "byol-fashion-mnist", "mae-digits", "simclr-cifar10"):
        assert name in out


@pytest.mark.parametrize("command", [[], ["pretrain"], ["recipes"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0 and "usage: ssl-coded" in capsys.readouterr().out


def test_pretrain_help_explains_overrides(capsys):
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    out = capsys.readouterr().out
    assert "--resume" in out and "key=value" in out


def test_compare_is_refused_under_ddp(capsys):
    assert main(["pretrain", "--compare", "simclr-digits", "trainer.devices=2", "trainer.strategy=ddp"]) == 2
    assert "under DDP run them separately" in capsys.readouterr().err
