"""A models-from-code test model: answers every row with ``model_config["value"]`` (which version loaded)."""

import mlflow.models
import pandas as pd
from mlflow.pyfunc import PythonModel


class ConstantModel(PythonModel):
    def load_context(self, context):
        self.value = float(context.model_config["value"])

    def predict(self, context, model_input, params=None):
        return pd.Series([self.value] * len(model_input), name="p_yes")


mlflow.models.set_model(ConstantModel())
