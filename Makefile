# Entry points. PROFILE and SEEDS override a study's defaults (the quick profile; 3 seeds for most studies, 1 for
# the speed table, 5 for seed-variance); VARIANTS=a,b runs only those variants of a study; JOBS=N shares a study
# between N processes.
PYTHON ?= python
PROFILE ?=
SEEDS ?=
JOBS ?= 1
VARIANTS ?=
STUDY_ARGS = $(if $(PROFILE),--profile $(PROFILE)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(VARIANTS),--variants "$(VARIANTS)")

# run study $(1) through the local launcher (harness/launch.py): JOBS=N > 1 runs N jobs at a time in child processes
# (cores // N torch threads each), then writes the report once
define run_study
	$(PYTHON) -m harness study $(1) $(STUDY_ARGS) --launcher local --jobs $(JOBS)
endef

.PHONY: install main test test-fast lint bench reports clean \
	ablation-table1 ablation-table2 ablation-table3 ablation-cspam \
	uniinst-table1 uniinst-table4 uniinst-table5 uniinst-table6 uniinst-table7 uniinst-table8 uniinst-all \
	casnet-table1 casnet-table2 casnet-table3 casnet-table4 casnet-seed-thr seed-variance postprocess-study coco-real \
	ablation-table1-readings casnet-table1-readings validity gpu-check

install:
	$(PYTHON) -m pip install -e ".[dev]"

# the main job on the embedded default: SOLOv2, quick profile, synthetic shapes-coco
main:
	$(PYTHON) -m harness compare --methods solov2 --dataset shapes-coco --profile $(or $(PROFILE),quick) --study main

test:
	$(PYTHON) -m pytest -q

test-fast:
	$(PYTHON) -m pytest -q -m "not slow"

lint:
	ruff check .

bench:
	$(PYTHON) benchmarks/bench_nms.py
	$(PYTHON) benchmarks/bench_train_step.py

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
		--val-dataset coco:../shared/data/tiny_coco/annotations/instances_val2017.json:../shared/data/tiny_coco/val2017

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
# not a table of a paper: SOLOv2's seed-to-seed AP spread at the quick profile and schedules that might narrow it
seed-variance:
	$(call run_study,seed_variance)

clean:
	rm -rf work_dirs .cache .pytest_cache .benchmarks
