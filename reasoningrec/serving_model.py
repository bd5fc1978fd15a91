"""The served model as an MLflow models-from-code file: ``mlflow.pyfunc.log_model(python_model=<this file>)``.

MLflow copies this file into the model folder and runs it when the model loads, so serving imports
the installed :mod:`reasoningrec.serving` and unpickles nothing from the artifact store. Importing
it anywhere else only hands the model object to ``mlflow.models.set_model``.
"""

import mlflow.models

from reasoningrec.serving import ReasoningRecModel

mlflow.models.set_model(ReasoningRecModel())
