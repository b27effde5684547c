"""Works slowly, then writes its own 'answer' claiming no time spent and a perfect score, and exits."""
import json
import os
import time

from _base import write_to_answer_fds, honest_placement

SLEEP_S = 0.5


def compute_model_placement(gpu_num, models):
    time.sleep(SLEEP_S)
    placement = honest_placement(gpu_num, models)
    index = {id(m): i for i, m in enumerate(models)}
    lists = [[gpu, [index[id(m)] for m in chosen]] for gpu, chosen in placement.items()]
    after = [[m.model_name, m.model_size, m.req_rate, m.slo] for m in models]
    forged = json.dumps({"ok": True, "gpu_lists": lists, "after": after, "seconds": 0.0, "peak_kvpr": 0.0,
                         "optimal": True}).encode()
    write_to_answer_fds(forged)
    os._exit(0)
