# Entry points. PROFILE and SEEDS override a study's defaults (quick profile, 3 seeds).
PYTHON ?= python
PROFILE ?= quick
SEEDS ?= 3
STUDY_ARGS = --profile $(PROFILE) --seeds $(SEEDS)

.PHONY: install main test test-fast lint bench reports clean \
	ablation-table1 ablation-table2 ablation-table3 \
	uniinst-table1 uniinst-table4 uniinst-table5 uniinst-table6 uniinst-table7 uniinst-table8 \
	casnet-table1 casnet-table2 casnet-table3 casnet-table4 postprocess-study coco-real

install:
	$(PYTHON) -m pip install -e ".[dev]"

# the main job on the embedded default: SOLOv2, quick profile, synthetic shapes-coco
main:
	$(PYTHON) -m harness compare --methods solov2 --dataset shapes-coco --profile $(PROFILE) --study main

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
	$(PYTHON) -m harness compare --methods solov2 --dataset shapes-coco --profile $(PROFILE) \
		--postprocess matrix,mask,none --study postprocess --seeds 1

coco-real:
	$(PYTHON) -m harness compare --methods solov2 --profile $(PROFILE) --study coco_real \
		--dataset coco:../shared/data/tiny_coco/annotations/instances_train2017.json:../shared/data/tiny_coco/train2017 \
		--val-dataset coco:../shared/data/tiny_coco/annotations/instances_val2017.json:../shared/data/tiny_coco/val2017

ablation-table1:
	$(PYTHON) -m harness study ablation_table1 $(STUDY_ARGS)
ablation-table2:
	$(PYTHON) -m harness study comparison_table2 $(STUDY_ARGS)
ablation-table3:
	$(PYTHON) -m harness study street_table3 $(STUDY_ARGS)

uniinst-table1:
	$(PYTHON) -m harness study uniinst_table1 $(STUDY_ARGS)
uniinst-table4:
	$(PYTHON) -m harness study uniinst_table4 $(STUDY_ARGS)
uniinst-table5:
	$(PYTHON) -m harness study uniinst_table5 $(STUDY_ARGS)
uniinst-table6:
	$(PYTHON) -m harness study uniinst_table6 $(STUDY_ARGS)
uniinst-table7:
	$(PYTHON) -m harness study uniinst_table7 $(STUDY_ARGS)
uniinst-table8:
	$(PYTHON) -m harness study uniinst_table8 $(STUDY_ARGS)

casnet-table1:
	$(PYTHON) -m harness study casnet_table1 $(STUDY_ARGS)
casnet-table2:
	$(PYTHON) -m harness study casnet_table2 $(STUDY_ARGS)
casnet-table3:
	$(PYTHON) -m harness study casnet_table3 $(STUDY_ARGS)
casnet-table4:
	$(PYTHON) -m harness study casnet_table4 $(STUDY_ARGS)

clean:
	rm -rf work_dirs .cache .pytest_cache .benchmarks
