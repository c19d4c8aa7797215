# openYuanrong docs: docs/source_en/multi_language_function_programming_interface/development_guide/stateless_function/concurrency.md
# ("Configuring Single Instance Multi-concurrency", Python). Only change: the import line.
import yuanrong as yr

yr.init()

@yr.invoke
def add(n):
    return n + 1

# Configure function instance resource usage as 1 CPU core, 1G memory, concurrency of 4
opt = yr.InvokeOptions(cpu=1000, memory=1024)
opt.concurrency = 4

# Concurrently call add function 8 times
results = [add.options(opt).invoke(i) for i in range(8)]
wait_results = yr.wait(results, len(results))
print(yr.get(wait_results[0]))

yr.finalize()
