"""The one deployment policy (:func:`hscc_mri.runtimes.decide`) on real objects: models'
int8 facts as a release manifest states them (:class:`KnownPlans`) or as plans kept for a
tiny model's weights (:class:`hscc_mri.deploy.Deployable`). The other CPU kind is
exercised through ``Request.cpu``."""
from __future__ import annotations

import pytest

from hscc_mri.deploy import Deployable
from hscc_mri.errors import SettingsError
from hscc_mri.runtimes import (Choice, CpuKind, KnownPlans, Request, Runtime, RuntimeUnavailable, decide,
                               resolve_choice)

from tests.mri.test_runtimes import Mini, _seeded, calibration, phantoms  # noqa: F401 - fixtures

HERE = CpuKind.here()
OTHER = CpuKind(not HERE.vnni)
OV = Runtime.OPENVINO


def _plans(*names: str, kind: CpuKind = HERE, runtime: Runtime = OV) -> list[KnownPlans]:
    return [KnownPlans(n, {runtime: kind}) for n in names]


def test_auto_takes_int8_only_when_every_model_has_a_plan_for_this_cpu_kind():
    floating = resolve_choice("openvino", "auto")
    with_plans = decide(Request("openvino", "auto", _plans("a.safetensors", "vgg16"))).choice
    assert (with_plans.runtime, with_plans.precision) == ("openvino", "int8")
    assert "int8: each model with its measured plan" in with_plans.reason
    auto = decide(Request("auto", "auto", _plans("a.safetensors", "vgg16"))).choice
    assert auto.precision == "int8" and auto.reason.startswith("OpenVINO: the fastest")
    one_missing = decide(Request("openvino", "auto", _plans("a.safetensors") + [KnownPlans("vgg16")])).choice
    assert (one_missing.runtime, one_missing.precision) == (floating.runtime, floating.precision)
    assert one_missing.reason.endswith("not int8: no measured int8 plan on this CPU kind for vgg16 "
                                       "(--precision int8 measures it once)")
    other_kind = decide(Request("openvino", "auto", _plans("a.safetensors", kind=OTHER))).choice
    assert other_kind.precision == floating.precision and "a.safetensors" in other_kind.reason
    onnx_plans = decide(Request("openvino", "auto", _plans("a", runtime=Runtime.ONNXRUNTIME))).choice
    assert onnx_plans.precision != "int8"  # a plan for another runtime does not count
    assert decide(Request("onnxruntime", "auto", _plans("a", runtime=Runtime.ONNXRUNTIME))).choice.precision == "int8"
    assert decide(Request("torch", "auto", _plans("a", runtime=Runtime.TORCH))).choice.precision != "int8"
    no_models = decide(Request("openvino", "auto")).choice
    assert no_models == floating and "not int8" not in no_models.reason  # nothing to have plans: the float choice


def test_the_release_takes_its_int8_graphs_only_on_the_cpu_kind_they_were_measured_on():
    floating = resolve_choice("auto", "auto")
    same = decide(Request(models=_plans("hscc-6x", "reference"), shipped=OV)).choice
    assert (same.runtime, same.precision) == ("openvino", "int8")
    assert same.reason == f"int8: the release's graphs, quantised by plans measured on this CPU kind ({HERE})"
    other = decide(Request(models=_plans("hscc-6x", "reference", kind=OTHER), shipped=OV)).choice
    assert (other.runtime, other.precision) == (floating.runtime, floating.precision)
    assert other.reason == (f"{floating.reason}; not int8: the shipped int8 plans were measured on {OTHER}, this CPU "
                            f"is {HERE} (no start-up measurement; --precision int8 runs them anyway)")
    # the same facts seen from a CPU of the other kind
    there = decide(Request(models=_plans("hscc-6x", "reference", kind=OTHER), shipped=OV, cpu=OTHER)).choice
    assert there.precision == "int8" and str(OTHER) in there.reason
    missing = decide(Request(models=_plans("hscc-6x") + [KnownPlans("reference")], shipped=OV)).choice
    assert missing.precision != "int8" and missing.reason.endswith("not int8: the release has no int8 plan for "
                                                                   "reference")
    elsewhere = decide(Request("onnxruntime", "auto", _plans("hscc-6x"), shipped=OV)).choice
    assert elsewhere.runtime == "onnxruntime" and elsewhere.reason.endswith("the release's int8 graphs are for openvino")


def test_an_explicit_request_is_taken_as_asked_without_fallback():
    asked = decide(Request("openvino", "fp32", _plans("a")))
    assert (asked.choice, asked.fallbacks) == (Choice("openvino", "fp32", ""), ())
    measured_later = decide(Request("openvino", "int8", [KnownPlans("a")]))  # deploy measures the plan once
    assert measured_later.choice.precision == "int8" and not measured_later.fallbacks
    other_kind = decide(Request("openvino", "int8", _plans("hscc-6x", kind=OTHER), shipped=OV)).choice
    assert other_kind.precision == "int8"  # the release's graphs run anyway when asked
    with pytest.raises(RuntimeUnavailable, match="ships int8 graphs for openvino only, and for hscc-6x of "
                                                 "hscc-6x, reference"):
        decide(Request("openvino", "int8", _plans("hscc-6x") + [KnownPlans("reference")], shipped=OV))
    with pytest.raises(RuntimeUnavailable, match="for openvino only"):
        decide(Request("onnxruntime", "int8", _plans("hscc-6x"), shipped=OV))
    with pytest.raises(SettingsError, match="runtime must be auto or one of"):
        decide(Request("tensorrt", "fp32"))
    with pytest.raises(SettingsError, match="precision must be auto or one of"):
        decide(Request("openvino", "float32"))  # training's word, not inference's


def test_the_fallback_chain_of_an_automatic_choice():
    """int8 chosen by auto -> the runtime's float choice on any error; an automatic
    runtime that is unavailable -> PyTorch fp32; nothing else moves on."""
    floating = resolve_choice("openvino", "auto")
    decision = decide(Request("auto", "auto", _plans("a", "b")))
    assert [(c.runtime, c.precision) for c in decision.chain] == [
        ("openvino", "int8"), (floating.runtime, floating.precision), ("torch", "fp32")]
    first = decision.fallback(decision.choice, ValueError("quantiser failed"))
    assert (first.runtime, first.precision) == (floating.runtime, floating.precision)
    assert first.reason == "fallback: int8 failed (ValueError)"
    assert decision.fallback(first, RuntimeError("a bug")) is None  # float fails for another reason: raise
    last = decision.fallback(first, RuntimeUnavailable("openvino is not installed"))
    assert (last.runtime, last.precision, last.reason) == ("torch", "fp32", "fallback: openvino is not installed")
    assert decision.fallback(last, RuntimeUnavailable("x")) is None  # the end of the chain
    float_auto = decide(Request("auto", "auto"))
    assert [(c.runtime, c.precision) for c in float_auto.chain] == [
        (floating.runtime, floating.precision), ("torch", "fp32")]
    runtime_asked = decide(Request("openvino", "auto", _plans("a")))
    assert [c.precision for c in runtime_asked.chain] == ["int8", floating.precision]  # no other runtime
    assert decide(Request("torch", "auto")).fallbacks == ()


def test_running_a_decision_walks_its_fallback_chain():
    """:meth:`Decision.run` (what the app, ``predict`` and the release loader use): the
    first choice that works, each fallback said once; an error the chain does not accept,
    or one of the ``fatal`` types, is raised as it is."""
    floating = resolve_choice("openvino", "auto")
    decision = decide(Request("auto", "auto", _plans("a", "b")))
    tried, said = [], []

    def attempt(choice):
        tried.append((choice.runtime, choice.precision))
        if choice.precision == "int8":
            raise ValueError("quantiser failed")
        return "compiled"

    result, choice = decision.run(attempt, said.append)
    assert result == "compiled" and (choice.runtime, choice.precision) == (floating.runtime, floating.precision)
    assert tried == [("openvino", "int8"), (floating.runtime, floating.precision)]
    assert choice.reason == "fallback: int8 failed (ValueError)"
    assert len(said) == 1 and "quantiser failed" in said[0] and floating.label in said[0]
    assert decision.run(lambda c: c.precision) == ("int8", decision.choice)  # nothing failed: no fallback

    class Corrupt(ValueError):
        pass

    def corrupt(choice):
        raise Corrupt("a file fails its check")

    with pytest.raises(Corrupt):
        decision.run(corrupt, fatal=(Corrupt,))
    with pytest.raises(KeyError):  # float fails for a reason the chain does not accept
        decision.run(lambda c: (_ for _ in ()).throw(ValueError("x") if c.precision == "int8" else KeyError("y")))


def test_deciding_looks_plans_up_once_per_model_and_an_explicit_precision_hashes_nothing(tmp_path, calibration):
    """A Deployable hashes its weights once, on first need: an explicit precision never
    (nothing to look up); auto to find the plan, and deploy reuses that identity."""
    from hscc_mri.deploy import find_int8_plan, int8_plan

    mini = _seeded(Mini)
    explicit = Deployable(mini, None, tmp_path)
    assert decide(Request("openvino", "fp32", [explicit])).choice.precision == "fp32"
    assert "identity" not in vars(explicit)
    int8_plan(mini, "openvino", calibration=calibration, progress=False, log=lambda _m: None, cache_dir=tmp_path)
    target = Deployable(mini, None, tmp_path)
    choice = decide(Request("openvino", "auto", [target])).choice
    assert choice.precision == "int8" and "identity" in vars(target)
    assert target.int8_plan_on(OV) == HERE and find_int8_plan(mini, "openvino", cache_dir=tmp_path) is not None
    compiled = target.deploy(choice, calibration=calibration, progress=False, log=lambda _m: None)
    assert compiled.precision == "int8" and compiled.details["plan"]["keep_fp32"] is not None
