# openYuanrong docs: docs/source_en/multi_language_function_programming_interface/development_guide/stateful_function/parallel-execution.md
# ("Single Instance Single Thread", Python). Only change: the import line.
import time
import yuanrong as yr

@yr.instance
class Counter:
    def __init__(self):
        self.count = 0

    def add(self, n):
        self.count += n
        return self.count

# Simulate a caller
@yr.invoke
def caller(instance, n):
    return yr.get(instance.add.invoke(n))

@yr.invoke
def delayed_output(n):
    time.sleep(1)
    return n

yr.init()
instance = Counter.invoke()

# Call in remote instance
result0 = caller.invoke(instance, delayed_output.invoke(1))

# Call in main program
result1 = instance.add.invoke(2)
result2 = instance.add.invoke(3)

# Output [6, 2, 5]
# result1 and result2 come from the same caller, execute sequentially, results are 2(0+2) and 5(2+3)
# result0 comes from another submitter, although submitted first, due to delay, executes last, result is 6(5+1)
print(yr.get([result0, result1, result2]))

instance.terminate()
yr.finalize()
