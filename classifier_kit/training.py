"""Training beyond the tutorial's loop: settings by table size, progress, class weights, batches, Ctrl-C."""
import dataclasses
import math
import sys

import torch
import torch.nn as nn

from .errors import InputError
from .preprocessing import BINS


# A table of more rows than this trains with a smaller rate until the validation loss stops improving
LARGE_TABLE_ROWS = 1000
LARGE_TABLE_LEARNING_RATE = 0.001
LARGE_TABLE_BATCHES = 400  # at most about this many batches an epoch: larger tables, larger batches
LARGE_TABLE_EPOCHS = 60    # at most (a bound on time); training stops sooner when the validation loss stops improving:
PATIENCE = 10              # after this many epochs without a lower validation loss
# Any other table of up to LARGE_TABLE_ROWS rows (the tutorial's own sheet keeps the tutorial's run) chooses its
# epochs on FOLDS folds of its training and validation rows: a few validation rows make a loss that one split's luck
# decides (a class that the validation rows hold and the training rows hardly do makes it rise from the third epoch
# while the accuracy still climbs), so the folds' losses are averaged, smoothed over SMOOTHING epochs, after a longer
# patience and up to more epochs than a large table's. The network is then trained again on the training and
# validation rows for those epochs.
FOLDS = 5
SMALL_TABLE_LEARNING_RATE = 0.003  # a smoother validation loss than at the tutorial's 0.01
SMALL_TABLE_PATIENCE = 20
SMALL_TABLE_EPOCHS = 100
SMOOTHING = 5
PROGRESS_DELAY = 2  # seconds an epoch runs before its progress bar appears


class BatchIndices:
    """A batch sampler: per batch, a tensor of row indices (shuffled each epoch, or in order)."""

    def __init__(self, rows, batch_size, shuffle=False, seed=0):
        self.rows, self.batch_size, self.shuffle = rows, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        order = torch.randperm(self.rows, generator=self.generator) if self.shuffle else torch.arange(self.rows)
        return iter(order.split(self.batch_size))

    def __len__(self):
        return math.ceil(self.rows / self.batch_size)


class TrainingInterrupted(Exception):
    """Ctrl-C during training; `epoch` is the epoch of the best weights so far (0: none)."""

    def __init__(self, epoch):
        super().__init__(epoch)
        self.epoch = epoch
        self.trained = None  # set by train_model: what can still be saved


def check_finite(loss, epoch):
    """Stop a diverging run before it can save a model of NaN weights."""
    if not math.isfinite(loss):
        raise InputError(f"training diverged in epoch {epoch}: the loss became {loss}; "
                         "lower the learning rate (--lr); no diverged weights were saved")
    return loss


def progress(loader, epoch):
    """The loader, behind a progress bar with rows per second on an interactive terminal.

    The bar shows only once an epoch has taken PROGRESS_DELAY seconds, and never when the
    output goes to a file or a pipe.
    """
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        yield from loader
        return
    from tqdm import tqdm

    rows = len(loader.dataset)
    with tqdm(total=rows, desc=f"Epoch {epoch}", unit="rows", unit_scale=True, leave=False,
              delay=PROGRESS_DELAY) as bar:
        for inputs, outputs in loader:
            yield inputs, outputs
            bar.update(len(outputs))


class ClassWeightedLoss(nn.Module):
    """Cross-entropy where each row's loss counts times its class's weight, averaged over the batch's rows.

    These are scikit-learn's class_weight semantics (a weight for each row). PyTorch's
    CrossEntropyLoss(weight=...) divides by the batch's sum of weights instead, which undoes
    the weights in every batch of a single class: with batches of 10 and a class of 3 %, most
    batches hold none of its rows, and the rare class counted far less than 'balanced' means
    (on the 3 % table of bench/real_tables.py, balanced accuracy 85.1 % instead of 86.9 %).
    """

    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def forward(self, scores, targets):
        return (nn.functional.cross_entropy(scores, targets, reduction="none") * self.weight[targets]).mean()


def balanced_weights(targets, count):
    """scikit-learn's class_weight='balanced': rows / (classes x rows of the class), for the classes present."""
    rows = torch.bincount(targets, minlength=count).double()
    present = int((rows > 0).sum())
    return torch.where(rows > 0, len(targets) / (present * rows.clamp(min=1)), torch.zeros_like(rows)).float()


@dataclasses.dataclass(frozen=True)
class Training:
    """How a network is trained, decided once from the options and the table's size (training_for).

    patience: stop once the validation loss has not improved for this many epochs (None: the
    tutorial's fixed epochs); folds: the epochs are chosen on this many folds of the training and validation rows,
    then the network is trained again on those rows for them (0: the epoch of the lowest validation loss is kept);
    every_row: once tested, the saved model learns from every labelled row; bins: each number feature is also
    encoded over this many quantile bins (number_bins); class_weight: 'balanced' or None.
    """

    epochs: int
    lr: float
    batch_size: int
    seed: int
    patience: int | None = None
    folds: int = 0
    every_row: bool = False
    bins: int = 0
    class_weight: str | None = None
    rate_by_weights: bool = False  # class weights without --lr: the rate is weighted_rate's
    by_size: frozenset = frozenset()  # the settings the table's size chose ('batch_size', 'lr'), not the options

    def for_rows(self, rows):
        """The same training for a table of `rows` rows (all the labelled rows, to learn from every one): the batch
        size and rate that the size chose are chosen again for it, so an epoch has as many batches as before."""
        if "batch_size" not in self.by_size:
            return self
        batch_size = max(self.batch_size, math.ceil(rows / LARGE_TABLE_BATCHES))
        lr = large_table_rate(batch_size) if "lr" in self.by_size else self.lr
        return dataclasses.replace(self, batch_size=batch_size, lr=lr)


def chosen_epoch(losses, smoothed):
    """The epoch (from 1) of the lowest validation loss; smoothed: of the loss averaged over the SMOOTHING epochs
    around each (fewer at the ends), so that one lucky epoch of a few validation rows does not choose."""
    if not smoothed:
        return 1 + min(range(len(losses)), key=losses.__getitem__)
    half = SMOOTHING // 2
    means = [sum(losses[max(0, epoch - half):epoch + half + 1]) / len(losses[max(0, epoch - half):epoch + half + 1])
             for epoch in range(len(losses))]
    return 1 + min(range(len(means)), key=means.__getitem__)


def training_for(options, rows, train_rows):
    """The Training of a table of `rows` rows (`train_rows` of them for training): what the command line
    gave, and for the rest the settings of the table's size.

    The tutorial's own sheet (Iris, 150 rows) trains as the tutorial does: 10 epochs at 0.01 in
    batches of 10, about 80 updates, and that model is saved. Any other table of up to
    LARGE_TABLE_ROWS rows chooses its epochs on FOLDS folds of its training and validation rows
    (their validation losses averaged and smoothed, SMALL_TABLE_PATIENCE) and then trains again
    on the training and validation rows: such a table has few rows to spare, and one
    split's validation rows are too few to choose on. On larger tables 0.01 leaves the weights
    noisy after thousands of updates, and a fixed number of epochs stops some tables while both
    losses still fall (bench/README.md). There the run trains at 0.001 in batches of at least 10
    (larger on large tables, so that an epoch is at most LARGE_TABLE_BATCHES batches, with the
    rate grown by the square root of the batch's growth) until the validation loss has not
    improved for PATIENCE epochs, at most LARGE_TABLE_EPOCHS. Every table but the tutorial's
    sheet is then learned again from every labelled row (every_row). Says so when it departs
    from the tutorial's settings.
    """
    given = options.given
    epochs, lr, batch_size, patience, folds = options.epochs, options.lr, options.batch_size, None, 0
    if not options.tutorial_table and rows <= LARGE_TABLE_ROWS and "epochs" not in given:
        epochs, patience, folds = SMALL_TABLE_EPOCHS, SMALL_TABLE_PATIENCE, FOLDS
        lr = lr if "lr" in given else SMALL_TABLE_LEARNING_RATE
        print(f"Choosing the epochs on {folds} folds of the training and validation rows (their validation loss "
              f"averaged and smoothed over {SMOOTHING} epochs, until it has not improved for {patience}, at most "
              f"{epochs}) at learning rate {lr:g}, then training again on the training and validation rows, as for "
              f"any table of up to {LARGE_TABLE_ROWS:,} rows (this one has {rows:,}); --epochs and --lr set them\n")
    if rows > LARGE_TABLE_ROWS:
        if "batch_size" not in given:
            batch_size = max(batch_size, math.ceil(train_rows / LARGE_TABLE_BATCHES))
        if "lr" not in given:
            lr = large_table_rate(batch_size)
        if "epochs" not in given:
            epochs, patience = LARGE_TABLE_EPOCHS, PATIENCE
        if not {"lr", "epochs", "batch_size"} <= given:
            length = f"until the validation loss has not improved for {PATIENCE} epochs (at most {epochs})" \
                if patience else f"for {epochs} epochs"
            print(f"Training {length} at learning rate {lr:g} in batches of {batch_size}, as for any table of "
                  f"more than {LARGE_TABLE_ROWS:,} rows (this one has {rows:,}); --epochs, --lr and --batch-size set "
                  "them\n")
    by_size = frozenset(name for name in ("batch_size", "lr") if name not in given) if rows > LARGE_TABLE_ROWS \
        else frozenset()
    return Training(epochs, lr, batch_size, options.seed, patience, folds, not options.tutorial_table,
                    number_bins(options, rows), options.class_weight,
                    options.class_weight == "balanced" and "lr" not in given, by_size)


def weighted_rate(training, weights):
    """The learning rate for class weights (a tensor, one a class): with --class-weight balanced and no --lr, the
    table's rate divided by the square root of the largest weight. A row of a class of 3 % weighs 16.7 and moves
    the weights as 16.7 rows do, so the last epochs' weights jump about the threshold; the smaller step gave the
    balanced accuracy of a class-weighted logistic regression (bench/README.md)."""
    if weights is None or not training.rate_by_weights:
        return training.lr
    return float(f"{training.lr / math.sqrt(float(weights.max())):.2g}")


def number_bins(options, rows):
    """How many quantile bins each number feature is encoded over besides its value (Preprocessing): BINS on a
    table of more than LARGE_TABLE_ROWS rows, where they pay for their inputs (bench/README.md); none on smaller
    ones and on the tutorial's sheet, whose network stays the tutorial's 4 -> 24 -> 24 -> 3."""
    return BINS if rows > LARGE_TABLE_ROWS and not options.tutorial_table else 0


def large_table_rate(batch_size):
    """A large table's learning rate for its batch size: a larger batch averages out more noise and takes a larger
    step (the square-root rule)."""
    return float(f"{LARGE_TABLE_LEARNING_RATE * math.sqrt(batch_size / 10):.2g}")
