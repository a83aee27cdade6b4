"""Config: profiles, --set overrides (unknown keys, wrong types), flatten round trip, train hash."""
import dataclasses

import pytest

import methods  # noqa: F401  (registers methods)
from harness.config import (
    DataConfig,
    TrainConfig,
    apply_overrides,
    from_flat,
    make_config,
    to_flat,
    train_hash,
)


def _method():
    return "solov2" if "solov2" in methods.METHODS else "oracle"


def test_profiles_differ_and_validate():
    smoke = make_config(_method(), "smoke")
    quick = make_config(_method(), "quick")
    assert smoke.train.max_iter < quick.train.max_iter
    assert smoke.profile == "smoke" and quick.profile == "quick"
    with pytest.raises(ValueError, match="unknown profile"):
        make_config(_method(), "huge")


def test_set_overrides_types():
    cfg = make_config(_method(), "smoke", overrides=["train.base_lr=0.5", "train.steps=[2,3]", "seed=7",
                                                     "train.amp=false", "data.train_short_sides=(64,96)"])
    assert cfg.train.base_lr == 0.5 and cfg.train.steps == (2, 3) and cfg.seed == 7
    assert cfg.train.amp is False and cfg.data.train_short_sides == (64, 96)


def test_unknown_key_lists_valid_keys():
    cfg = make_config(_method(), "smoke")
    with pytest.raises(ValueError) as e:
        apply_overrides(cfg, ["train.learning_rate=0.1"])
    assert "unknown config key 'train.learning_rate'" in str(e.value)
    assert "train.base_lr" in str(e.value)


@pytest.mark.parametrize("item,msg", [("train.max_iter=ten", "expected an int"),
                                      ("train.amp=maybe", "expected a bool"),
                                      ("train.device=tpu", "not one of"),
                                      ("train.base_lr", "key=value")])
def test_bad_values(item, msg):
    with pytest.raises(ValueError, match=msg):
        apply_overrides(make_config(_method(), "smoke"), [item])


def test_validation_in_post_init():
    with pytest.raises(ValueError, match="flip_prob"):
        DataConfig(flip_prob=2.0)
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=(10, 5))
    with pytest.raises(ValueError, match="max_iter"):
        apply_overrides(make_config(_method(), "smoke"), ["train.max_iter=0"])


def test_frozen():
    cfg = make_config(_method(), "smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.max_iter = 3  # type: ignore[misc]


def test_flat_round_trip_and_hash():
    cfg = make_config(_method(), "smoke", seed=3)
    flat = to_flat(cfg)
    assert flat["seed"] == 3 and flat["method.name"] == cfg.method.name
    back = from_flat(flat)
    assert back == cfg
    assert train_hash(back) == train_hash(cfg)
    # post-processing and timing do not change the trained weights -> same hash
    other = apply_overrides(cfg, ["timing.num_images=99", "method.postprocess=none"])
    assert train_hash(other) == train_hash(cfg)
    assert train_hash(apply_overrides(cfg, ["train.base_lr=0.3"])) != train_hash(cfg)
    assert train_hash(apply_overrides(cfg, ["seed=4"])) != train_hash(cfg)


def test_train_hash_changes_with_the_synthetic_generator_version(monkeypatch):
    import harness.data.synthetic as synthetic
    cfg = make_config(_method(), "smoke")
    real = make_config(_method(), "smoke", dataset="coco:a.json:img")
    before, before_real = train_hash(cfg), train_hash(real)
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    assert train_hash(cfg) != before  # new synthetic data: a new run, never a stale checkpoint
    assert train_hash(real) == before_real


def test_cli_usage_errors_exit_2(capsys):
    from harness.cli import main
    assert main(["train", "--method", "no_such_method", "--profile", "smoke"]) == 2
    assert "registered" in capsys.readouterr().err
    assert main(["train", "--method", _method(), "--profile", "smoke", "--set", "train.bogus=1"]) == 2
    assert "valid keys" in capsys.readouterr().err
    assert main(["study", "no_such_study", "--report-only"]) == 2
    with pytest.raises(SystemExit) as e:
        main(["train"])  # argparse: missing --method
    assert e.value.code == 2


def test_fields_added_later_count_in_the_hash_only_away_from_their_default():
    cfg = make_config("solov2", "quick", dataset="shapes-coco", seed=0, overrides=["method.use_cspam=true"])
    same = make_config("solov2", "quick", dataset="shapes-coco", seed=0,
                       overrides=["method.use_cspam=true", "method.cspam_theta_on=residual",
                                  "method.cspam_pam_after=[2,3]"])
    other = make_config("solov2", "quick", dataset="shapes-coco", seed=0,
                        overrides=["method.use_cspam=true", "method.cspam_theta_on=attention"])
    no_pam = make_config("solov2", "quick", dataset="shapes-coco", seed=0,
                         overrides=["method.use_cspam=true", "method.cspam_pam_after=[]"])
    assert same.method.cspam_pam_after == (2, 3)
    assert train_hash(cfg) == train_hash(same)  # explicit defaults: the runs recorded before the fields existed
    assert len({train_hash(cfg), train_hash(other), train_hash(no_pam)}) == 3
    # the fields are still written in the run's config (records), whatever their value
    assert to_flat(cfg)["method.cspam_theta_on"] == "residual"


def test_a_changed_default_is_hashed_so_old_runs_are_never_reused():
    """cspam_theta_on's default moved from "reduced" to "residual" (2026-12-02): it is no longer omitted from the
    hash at its default, so a run made under the old default (hash without the field) never matches a new one."""
    from methods.solov2 import SOLOv2Config
    assert "cspam_theta_on" not in SOLOv2Config.HASH_OMIT_AT_DEFAULT
    new = make_config("solov2", "quick", overrides=["method.use_cspam=true"])
    literal = make_config("solov2", "quick", overrides=["method.use_cspam=true", "method.cspam_theta_on=reduced"])
    assert train_hash(new) != train_hash(literal)
