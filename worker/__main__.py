from worker.cli import main

main(prog_name="replay-attach")
