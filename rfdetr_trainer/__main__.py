"""``python -m rfdetr_trainer``."""

from rfdetr_trainer.cli.app import main

if __name__ == "__main__":
    main()
