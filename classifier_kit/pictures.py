"""Pictures of the training (--plot): training.png and confusion.png."""
import os

import torch

from .errors import InputError


def import_pyplot():
    try:
        import matplotlib
    except ImportError:
        raise InputError("--plot needs matplotlib, which is not installed: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    return pyplot


def plot_training(history, path):
    """training.png: training and validation loss, and validation accuracy, per epoch."""
    pyplot = import_pyplot()
    epochs = range(1, len(history) + 1)
    train_loss, val_loss, accuracy = zip(*history)
    figure, (losses, accuracies) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    losses.plot(epochs, train_loss, marker="o", label="training loss")
    losses.plot(epochs, val_loss, marker="o", label="validation loss")
    kept = 1 + min(range(len(val_loss)), key=val_loss.__getitem__)
    losses.axvline(kept, color="gray", linestyle="--", label=f"kept checkpoint (epoch {kept})")
    losses.set(title="Loss per epoch", xlabel="epoch", ylabel="cross-entropy loss")
    losses.legend()
    accuracies.plot(epochs, accuracy, marker="o", color="tab:green")
    accuracies.set(title="Validation accuracy per epoch", xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 105))
    for axes in (losses, accuracies):
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    save_figure(figure, path)


CONFUSION_NAMED_CLASSES = 30  # up to this many classes the picture names them and counts every cell
CONFUSION_MOST_CLASSES = 400   # beyond this the cells are too small to see: no picture


def plot_confusion(predicted, actual, classes, path):
    """confusion.png: test rows by true class (rows) and predicted class (columns).

    Returns None, or a note when the picture leaves out names and counts or is not drawn.
    """
    count = len(classes)
    if count > CONFUSION_MOST_CLASSES:
        return f"confusion.png was not drawn: {count} classes are more than a picture can show ({CONFUSION_MOST_CLASSES})"
    pyplot = import_pyplot()
    matrix = torch.bincount(actual * count + predicted, minlength=count * count).reshape(count, count).numpy()
    named = count <= CONFUSION_NAMED_CLASSES
    size = max(4.5, 0.6 * count + 3) if named else 11
    figure, axes = pyplot.subplots(figsize=(size + 1, size))
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, label="test rows")
    if named:
        axes.set_xticks(range(count), classes, rotation=30, ha="right")
        axes.set_yticks(range(count), classes)
        for row in range(count):
            for column in range(count):
                dark = matrix[row, column] > matrix.max() / 2
                axes.text(column, row, matrix[row, column], ha="center", va="center",
                          color="white" if dark else "black")
    axes.set(title=f"Confusion matrix, {int(matrix.sum())} test rows", xlabel="predicted class" if named else
             "predicted class (index in NetModel.json's classes)", ylabel="true class" if named else
             "true class (index)")
    save_figure(figure, path)
    if not named:
        return (f"confusion.png shows {count} classes by their index, without names or counts "
                f"(those fit up to {CONFUSION_NAMED_CLASSES} classes)")
    return None


def save_figure(figure, path):
    import matplotlib.pyplot as pyplot

    figure.tight_layout()
    figure.savefig(path, format="png", dpi=110)
    pyplot.close(figure)


def write_pictures(folder, files, history, predicted, actual, classes):
    pictures = []
    if history:
        pictures.append(os.path.join(folder, "training.png"))
        plot_training(history, files.stage(pictures[-1]))
    confusion = os.path.join(folder, "confusion.png")
    note = plot_confusion(predicted, actual, classes, files.stage(confusion))
    if os.path.getsize(files.stage(confusion)):
        pictures.append(confusion)
    else:
        files.discard(confusion)
    if note:
        print(f"Note: {note}")
    print("Pictures written:", ", ".join(pictures) or "none")
