# Entry points. PROFILE and SEEDS override a study's defaults (the quick profile; 3 seeds for most studies, 1 for
# the speed table, 5 for seed-variance); VARIANTS=a,b runs only those variants of a study; JOBS=N shares a study
# between N processes.
PYTHON ?= python
PROFILE ?=
SEEDS ?=
JOBS ?= 1
VARIANTS ?=
STUDY_ARGS = $(if $(PROFILE),--profile $(PROFILE)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(VARIANTS),--variants "$(VARIANTS)") $(if $(ONLY_SEEDS),--only-seeds $(ONLY_SEEDS))

# run study $(1) through the local launcher (harness/launch.py): JOBS=N > 1 runs N jobs at a time in child processes
# (cores // N torch threads each), then writes the report once
define run_study
	SEGBENCH_PROCS=$(JOBS) $(PYTHON) -m harness study $(1) $(STUDY_ARGS) --launcher local --jobs $(JOBS)
endef

.DEFAULT_GOAL := help
.PHONY: help install main test test-fast fuzz lint bench reports clean \
	ablation-table1 ablation-table2 ablation-table3 ablation-cspam \
	uniinst-table1 uniinst-table4 uniinst-table5 uniinst-table6 uniinst-table7 uniinst-table8 uniinst-all \
	casnet-table1 casnet-table2 casnet-table3 casnet-table4 casnet-seed-thr seed-variance postprocess-study coco-real \
	quick-profile-tradeoff \
	ablation-table1-readings casnet-table1-readings validity gpu-check \
	main-real real-pennfudan

# `make` alone prints this list (one line per target); tests/test_cli_help.py checks that it names every target
help:
	@echo "make help               this list (the default target)"
	@echo "make install            pip install -e '.[dev]' (pulls a CUDA build of torch, about 5.8 GB)"
	@echo "make main               SOLOv2, quick profile, shapes-coco -> reports/main.md"
	@echo "make test               the full test suite"
	@echo "make test-fast          the tests not marked slow"
	@echo "make fuzz               the input fuzz test at length (FUZZ_EXAMPLES=2000)"
	@echo "make lint               ruff check ."
	@echo "make bench              NMS, train-step and pool-overhead micro-benchmarks"
	@echo "make reports            regenerate every report from the committed records"
	@echo "make postprocess-study  one SOLOv2, evaluated with Matrix NMS, mask NMS and no NMS"
	@echo "make coco-real          SOLOv2 trained on the real tiny_coco images (../shared/data)"
	@echo "make ablation-table1    improved SOLOv2 Table 1 (CSPAM x TWFPN+CSMF x AML)"
	@echo "make ablation-table2    improved SOLOv2 Table 2 (methods side by side, timed)"
	@echo "make ablation-table3    improved SOLOv2 Table 3 (per-class AP, shapes-street)"
	@echo "make ablation-cspam     which part of CSPAM moves AP (not a paper table)"
	@echo "make uniinst-table1     UniInst Table 1 (AP with and without NMS)"
	@echo "make uniinst-table4     UniInst Table 4 (OYOR alpha sweep)"
	@echo "make uniinst-table5     UniInst Table 5 (3DMF, centre-ness, re-ranking)"
	@echo "make uniinst-table6     UniInst Table 6 (auxiliary loss)"
	@echo "make uniinst-table7     UniInst Table 7 (trained on shapes-coco, tested OCHuman-style)"
	@echo "make uniinst-table8     UniInst Table 8 (speed by the timing protocol)"
	@echo "make uniinst-all        every UniInst table in the order that reuses runs"
	@echo "make casnet-table1      CASNet Table I (joint vs separated, beside the other methods)"
	@echo "make casnet-table2      CASNet Table II (PQ, SQ, RQ, mIoU, AP)"
	@echo "make casnet-table3      CASNet Table III (per-class AP with GT semantics)"
	@echo "make casnet-table4      CASNet Table IV (per-class PQ with GT semantics)"
	@echo "make casnet-seed-thr    CASNet's seed threshold (not a paper table)"
	@echo "make seed-variance      SOLOv2's seed-to-seed AP spread (not a paper table)"
	@echo "make quick-profile-tradeoff  canvas size vs ceiling and training cost (not a paper table; JOBS=2)"
	@echo "make ablation-table1-readings  Table 1's claims under every open reading (harness/readings.py)"
	@echo "make casnet-table1-readings    CASNet Table I's claim under every open reading"
	@echo "make validity           positives per GT and representation ceilings -> reports/validity.md"
	@echo "make gpu-check          fp32/fp16 timing, AMP training, Matrix NMS on CUDA (skips without one)"
	@echo "make main-real          SOLOv2 at the real profile on Penn-Fudan -> reports/main_real.md"
	@echo "make real-pennfudan     every method on real Penn-Fudan photographs -> reports/real_pennfudan.md"
	@echo "make clean              remove work_dirs, caches"
	@echo "options: PROFILE=smoke|quick|paper SEEDS=N VARIANTS=a,b JOBS=N; python -m harness list shows studies"

install:
	$(PYTHON) -m pip install -e ".[dev]"

# the main job on the embedded default: SOLOv2, quick profile, synthetic shapes-coco
main:
	$(PYTHON) -m harness compare --methods solov2 --dataset shapes-coco --profile $(or $(PROFILE),quick) --study main

# the main job on real photographs: SOLOv2, real profile, Penn-Fudan train -> val (reports/main_real.md)
main-real:
	$(PYTHON) -m harness compare --methods solov2 --dataset pennfudan:../shared/data/pennfudan \
		--profile $(or $(PROFILE),real) --study main_real

test:
	$(PYTHON) -m pytest -q

test-fast:
	$(PYTHON) -m pytest -q -m "not slow"

FUZZ_EXAMPLES ?= 2000
# the property-based input fuzz test at length (CI runs it with a bounded example count)
fuzz:
	SEGBENCH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PYTHON) -m pytest -q -s tests/test_fuzz_inputs.py

lint:
	ruff check .

bench:
	$(PYTHON) benchmarks/bench_nms.py
	$(PYTHON) benchmarks/bench_train_step.py
	$(PYTHON) benchmarks/bench_pool_overhead.py

reports:
	$(PYTHON) -m harness report

# every method at the paper profile's input size on CUDA (fp32 / fp16 timing, AMP training, memory, NMS, DDP);
# prints one table, writes results/gpu_check/; skipped (exit 0) without CUDA
gpu-check:
	$(PYTHON) -m harness gpu-check

postprocess-study:
	$(PYTHON) -m harness compare --methods solov2 --dataset shapes-coco --profile $(or $(PROFILE),quick) \
		--postprocess matrix,mask,none --study postprocess --seeds 1

coco-real:
	$(PYTHON) -m harness compare --methods solov2 --profile $(or $(PROFILE),quick) --study coco_real \
		--dataset coco:../shared/data/tiny_coco/annotations/instances_train2017.json:../shared/data/tiny_coco/train2017 \
		--val-dataset coco:../shared/data/tiny_coco/annotations/instances_val2017.json:../shared/data/tiny_coco/val2017 \
		--set train.max_iter=400 --set 'train.steps=(320,380)'

ablation-table1:
	$(call run_study,ablation_table1)
# Table 1's claims under every open reading of CSPAM and AML (harness/readings.py), AML also on shapes-ochuman
ablation-table1-readings:
	$(PYTHON) -m harness study ablation_table1 --readings $(if $(SEEDS),--seeds $(SEEDS))
casnet-table1-readings:
	$(PYTHON) -m harness study casnet_table1 --readings $(if $(SEEDS),--seeds $(SEEDS))
# positives per GT and representation ceilings of every method at a profile -> reports/validity.md
validity:
	$(PYTHON) -m harness validity --profile $(or $(PROFILE),quick)
ablation-table2:
	$(call run_study,comparison_table2)
ablation-table3:
	$(call run_study,street_table3)
# not a table of the paper: which part of CSPAM moves AP (CSP stages, the PAM, theta's placement)
ablation-cspam:
	$(call run_study,ablation_cspam)

uniinst-table1:
	$(call run_study,uniinst_table1)
uniinst-table4:
	$(call run_study,uniinst_table4)
uniinst-table5:
	$(call run_study,uniinst_table5)
uniinst-table6:
	$(call run_study,uniinst_table6)
uniinst-table7:
	$(call run_study,uniinst_table7)
uniinst-table8:
	$(call run_study,uniinst_table8)
# every UniInst table in the order that lets later ones reuse earlier runs (Table 7 evaluates Table 1's weights);
# the speed table last and in one process (JOBS=1), so that nothing runs beside its timing
uniinst-all:
	$(MAKE) uniinst-table1 uniinst-table4 uniinst-table5 uniinst-table6 uniinst-table7
	$(MAKE) uniinst-table8 JOBS=1

casnet-table1:
	$(call run_study,casnet_table1)
casnet-table2:
	$(call run_study,casnet_table2)
# not a table of the paper: CASNet's seed threshold, post-processing only (reuses casnet-table1's joint runs)
casnet-seed-thr:
	$(call run_study,casnet_seed_thr)
casnet-table3:
	$(call run_study,casnet_table3)
casnet-table4:
	$(call run_study,casnet_table4)
# real photographs: SOLOv2, UniInst, CondInst, Mask R-CNN, CASNet on Penn-Fudan, with and without NMS, 3 seeds
real-pennfudan:
	$(call run_study,real_pennfudan)
# not a table of a paper: SOLOv2's seed-to-seed AP spread at the quick profile and schedules that might narrow it
seed-variance:
	$(call run_study,seed_variance)

# the quick profile's canvas against its ceiling and training cost (issue 13); two runs at a time so the walls compare
quick-profile-tradeoff:
	$(call run_study,quick_profile_tradeoff)

clean:
	rm -rf work_dirs .cache .pytest_cache .benchmarks
