"""Fine-tuning of Sentence-Transformers models with the library's own trainer, losses,
evaluator and callbacks. ``SentenceTransformersPlugin`` is the ``embedtune.plugins`` entry
point; the modules follow the seams of a run:

- :mod:`.plugin`: validation at create time and the ``train`` entry;
- :mod:`.run`: trials, evaluation, checkpoints and the result;
- :mod:`.recipe`: automatic defaults, the loss and the trainer's arguments;
- :mod:`.sampling`: length-aware batches without duplicates;
- :mod:`.mining`: hard negatives; :mod:`.card`: the model card;
- :mod:`.state`: what a resumed run reads back; :mod:`.callbacks`: progress and stops;
- :mod:`.tracking`: MLflow.
"""

from embedtune.training.options import TRIAL_GRID, TrainingOptions
from embedtune.training.sentence_transformers.plugin import SentenceTransformersPlugin
from embedtune.training.sentence_transformers.state import last_complete_checkpoint

__all__ = [
    "TRIAL_GRID",
    "SentenceTransformersPlugin",
    "TrainingOptions",
    "last_complete_checkpoint",
]
