# openYuanrong docs: docs/source_en/multi_language_function_programming_interface/development_guide/stateless_function/index.md
# ("Canceling Stateless Function Execution", Python). Only change: the import line.
import time
import yuanrong as yr

yr.init()

@yr.invoke
def delay():
    time.sleep(10)
    return 0

result_ref = delay.invoke()
# Cancel stateless function execution
yr.cancel(result_ref)

# Successful cancellation will throw RuntimeError exception when getting the object reference value
try:
    yr.get(result_ref)
except RuntimeError as e:
    print(e)

yr.finalize()
