# Entry points. PROFILE and SEEDS override a study's defaults (the quick profile; 3 seeds for most studies, 1 for
# the speed table, 5 for seed-variance); VARIANTS=a,b runs only those variants of a study; JOBS=N shares a study
# between N processes.
PYTHON ?= python
PROFILE ?=
SEEDS ?=
JOBS ?= 1
VARIANTS ?=
STUDY_ARGS = $(if $(PROFILE),--profile $(PROFILE)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(VARIANTS),--variants "$(VARIANTS)")

# run study $(1); with JOBS=N > 1, N processes share it (one torch thread each), then the report is written
define run_study
	@if [ "$(JOBS)" = "1" ]; then $(PYTHON) -m harness study $(1) $(STUDY_ARGS); else \
	  pids=""; for i in $$(seq 0 $$(($(JOBS)-1))); do \
	    $(PYTHON) -m harness study $(1) $(STUDY_ARGS) --shard $$i/$(JOBS) --set train.threads=1 --no-progress & \
	    pids="$$pids $$!"; done; \
	  for p in $$pids; do wait $$p || exit 1; done; \
	  $(PYTHON) -m harness study $(1) $(STUDY_ARGS) --report-only; fi
endef

.PHONY: install main test test-fast lint bench reports clean \
	ablation-table1 ablation-table2 ablation-table3 ablation-cspam \
	uniinst-table1 uniinst-table4 uniinst-table5 uniinst-table6 uniinst-table7 uniinst-table8 uniinst-all \
	casnet-table1 casnet-table2 casnet-table3 casnet-table4 casnet-seed-thr seed-variance postprocess-study coco-real \
	main-real real-pennfudan

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

lint:
	ruff check .

bench:
	$(PYTHON) benchmarks/bench_nms.py
	$(PYTHON) benchmarks/bench_train_step.py

reports:
	$(PYTHON) -m harness report

postprocess-study:
	$(PYTHON) -m harness compare --methods solov2 --dataset shapes-coco --profile $(or $(PROFILE),quick) \
		--postprocess matrix,mask,none --study postprocess --seeds 1

coco-real:
	$(PYTHON) -m harness compare --methods solov2 --profile $(or $(PROFILE),quick) --study coco_real \
		--dataset coco:../shared/data/tiny_coco/annotations/instances_train2017.json:../shared/data/tiny_coco/train2017 \
		--val-dataset coco:../shared/data/tiny_coco/annotations/instances_val2017.json:../shared/data/tiny_coco/val2017

ablation-table1:
	$(call run_study,ablation_table1)
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

clean:
	rm -rf work_dirs .cache .pytest_cache .benchmarks
