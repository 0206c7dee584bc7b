"""The tutorial's published code, as it stands, for side-by-side benchmarks.

A faithful re-implementation of the Windows ML tutorial's DataClassifier.py (data stage,
training stage and ONNX conversion stage): pandas.read_excel with its default engine,
DataLoaders that collate row by row, validation and test one row at a time, the
accuracy-based checkpoint, and torch.onnx.export of the trained model. Only what stops
it running anywhere is changed: the data path, label column and hyperparameters are
arguments, batches move to the model's device, the label map is built from the data, and
per-species counting takes the test batch size of 1 for granted as the tutorial does.

    python bench/tutorial.py --data Iris_dataset.xlsx [--epochs 10 --lr 0.01 --batch-size 10]
"""
import argparse
import time

START = time.perf_counter()

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.optim import Adam  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset, random_split  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--label", default="Iris_Type")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--batch-size", type=int, default=10)
parser.add_argument("--seed", type=int, default=None, help="the tutorial has none; benchmarks set one")
parser.add_argument("--output-dir", default=".")
parser.add_argument("--no-onnx", action="store_true")
args = parser.parse_args()
if args.seed is not None:
    torch.manual_seed(args.seed)

# Loading the Data
if args.data.endswith(".csv"):
    df = pd.read_csv(args.data)
else:
    df = pd.read_excel(args.data)
print('Take a look at sample from the dataset:')
print(df.head())

print('\nOur dataset is balanced and has the following values to predict:')
print(df[args.label].value_counts())

labels = {name: number for number, name in enumerate(sorted(df[args.label].unique()))}
df['IrisType_num'] = df[args.label]
df.IrisType_num = [labels[item] for item in df.IrisType_num]

input = df.drop(columns=[df.columns[0], args.label, 'IrisType_num'])
output = df.loc[:, 'IrisType_num']

input = torch.Tensor(input.to_numpy())
output = torch.tensor(output.to_numpy())
data = TensorDataset(input, output)

train_batch_size = args.batch_size
number_rows = len(input)
test_split = int(number_rows * 0.3)
validate_split = int(number_rows * 0.2)
train_split = number_rows - test_split - validate_split
train_set, validate_set, test_set = random_split(data, [train_split, validate_split, test_split])

train_loader = DataLoader(train_set, batch_size=train_batch_size, shuffle=True)
validate_loader = DataLoader(validate_set, batch_size=1)
test_loader = DataLoader(test_set, batch_size=1)

input_size = list(input.shape)[1]
learning_rate = args.lr
output_size = len(labels)


class Network(nn.Module):
    def __init__(self, input_size, output_size):
        super(Network, self).__init__()
        self.layer1 = nn.Linear(input_size, 24)
        self.layer2 = nn.Linear(24, 24)
        self.layer3 = nn.Linear(24, output_size)

    def forward(self, x):
        x1 = F.relu(self.layer1(x))
        x2 = F.relu(self.layer2(x1))
        x3 = self.layer3(x2)
        return x3


model = Network(input_size, output_size)
device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
print("The model will be running on", device, "device\n")
model.to(device)
path = args.output_dir + "/NetModel.pth"


def saveModel():
    torch.save(model.state_dict(), path)


loss_fn = nn.CrossEntropyLoss()
optimizer = Adam(model.parameters(), lr=learning_rate, weight_decay=0.0001)


def train(num_epochs):
    best_accuracy = 0.0
    print("Begin training...")
    for epoch in range(1, num_epochs + 1):
        running_train_loss = 0.0
        running_accuracy = 0.0
        running_vall_loss = 0.0
        total = 0
        for data in train_loader:
            inputs, outputs = data
            inputs, outputs = inputs.to(device), outputs.to(device)
            optimizer.zero_grad()
            predicted_outputs = model(inputs)
            train_loss = loss_fn(predicted_outputs, outputs)
            train_loss.backward()
            optimizer.step()
            running_train_loss += train_loss.item()
        train_loss_value = running_train_loss / len(train_loader)
        with torch.no_grad():
            model.eval()
            for data in validate_loader:
                inputs, outputs = data
                inputs, outputs = inputs.to(device), outputs.to(device)
                predicted_outputs = model(inputs)
                val_loss = loss_fn(predicted_outputs, outputs)
                _, predicted = torch.max(predicted_outputs, 1)
                running_vall_loss += val_loss.item()
                total += outputs.size(0)
                running_accuracy += (predicted == outputs).sum().item()
        val_loss_value = running_vall_loss / len(validate_loader)
        accuracy = (100 * running_accuracy / total)
        if accuracy > best_accuracy:
            saveModel()
            best_accuracy = accuracy
        print('Completed training batch', epoch, 'Training Loss is: %.4f' % train_loss_value,
              'Validation Loss is: %.4f' % val_loss_value, 'Accuracy is %d %%' % (accuracy))


def test():
    model = Network(input_size, output_size)
    model.load_state_dict(torch.load(path))
    running_accuracy = 0
    total = 0
    with torch.no_grad():
        for data in test_loader:
            inputs, outputs = data
            outputs = outputs.to(torch.float32)
            predicted_outputs = model(inputs)
            _, predicted = torch.max(predicted_outputs, 1)
            total += outputs.size(0)
            running_accuracy += (predicted == outputs).sum().item()
        print('Accuracy of the model based on the test set of', test_split,
              'inputs is: %d %%' % (100 * running_accuracy / total))
    return 100 * running_accuracy / total


def test_species():
    model = Network(input_size, output_size)
    model.load_state_dict(torch.load(path))
    labels_length = len(labels)
    labels_correct = list(0. for i in range(labels_length))
    labels_total = list(0. for i in range(labels_length))
    with torch.no_grad():
        for data in test_loader:
            inputs, outputs = data
            predicted_outputs = model(inputs)
            _, predicted = torch.max(predicted_outputs, 1)
            label_correct_running = (predicted == outputs).squeeze()
            label = outputs[0]
            if label_correct_running.item():
                labels_correct[label] += 1
            labels_total[label] += 1
    label_list = list(labels.keys())
    for i in range(output_size):
        if labels_total[i]:
            print('Accuracy to predict %5s : %2d %%' % (label_list[i], 100 * labels_correct[i] / labels_total[i]))


def Convert_ONNX():
    model = Network(input_size, output_size)
    model.load_state_dict(torch.load(path))
    model.eval()
    dummy_input = torch.randn(1, input_size, requires_grad=True)
    torch.onnx.export(model, dummy_input, args.output_dir + "/Network.onnx", export_params=True, opset_version=11,
                      do_constant_folding=True, input_names=['input'], output_names=['output'],
                      dynamic_axes={'input': {0: 'batch_size'}, 'output': {0: 'batch_size'}}, dynamo=False)
    print(" ")
    print('Model has been converted to ONNX')


if __name__ == "__main__":
    train(args.epochs)
    print('Finished Training\n')
    accuracy = test()
    test_species()
    if not args.no_onnx:
        Convert_ONNX()
    print("tutorial test accuracy %.4f" % accuracy)
